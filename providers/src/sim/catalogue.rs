//! The sim provider's built-in catalogue: plans, zones and prices of the simulated cloud.
//!
//! | plan     | cores | memory MB | storage GB | per month (SIM) |
//! |----------|-------|-----------|------------|-----------------|
//! | `small`  | 1     | 1024      | 25         | 5.00            |
//! | `medium` | 2     | 4096      | 50         | 20.00           |
//! | `large`  | 4     | 8192      | 100        | 40.00           |
//!
//! Zones: `sim-a`, `sim-b`, `sim-c`, all at the same prices. The currency `SIM` is not money:
//! the prices exist so plans made with the sim show (and tests check) cost changes.

use prov_engine::traits::{PlanInfo, Pricing, Zone};

/// (name, cores, memory MB, storage GB).
pub const PLANS: &[(&str, u32, u64, u64)] = &[
    ("small", 1, 1024, 25),
    ("medium", 2, 4096, 50),
    ("large", 4, 8192, 100),
];

/// (name, description).
pub const ZONES: &[(&str, &str)] = &[
    ("sim-a", "simulated zone A"),
    ("sim-b", "simulated zone B"),
    ("sim-c", "simulated zone C"),
];

pub const CURRENCY: &str = "SIM";

/// (plan, monthly price in SIM); hourly = monthly / 730.
pub const PRICES: &[(&str, f64)] = &[("small", 5.0), ("medium", 20.0), ("large", 40.0)];

pub fn plans() -> Vec<PlanInfo> {
    PLANS
        .iter()
        .map(|&(name, cores, memory_mb, storage_gb)| PlanInfo {
            name: name.to_string(),
            cores,
            memory_mb,
            storage_gb,
        })
        .collect()
}

pub fn zones() -> Vec<Zone> {
    ZONES
        .iter()
        .map(|&(name, description)| Zone {
            name: name.to_string(),
            description: description.to_string(),
        })
        .collect()
}

pub fn pricing() -> Vec<Pricing> {
    PRICES
        .iter()
        .map(|&(name, monthly)| Pricing {
            plan: name.to_string(),
            zone: None,
            hourly: (monthly / 730.0 * 10_000.0).round() / 10_000.0,
            monthly,
            currency: CURRENCY.to_string(),
        })
        .collect()
}

fn names<T>(items: &[T], name: impl Fn(&T) -> &str) -> String {
    items.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// Checks a plan name; the error names the bad value and the valid ones.
pub fn check_plan(plan: &str) -> Result<(), String> {
    if PLANS.iter().any(|p| p.0 == plan) {
        Ok(())
    } else {
        Err(format!(
            "unknown plan {plan:?} (valid plans: {})",
            names(PLANS, |p| p.0)
        ))
    }
}

/// Checks a zone name; the error names the bad value and the valid ones.
pub fn check_zone(zone: &str) -> Result<(), String> {
    if ZONES.iter().any(|z| z.0 == zone) {
        Ok(())
    } else {
        Err(format!(
            "unknown zone {zone:?} (valid zones: {})",
            names(ZONES, |z| z.0)
        ))
    }
}
