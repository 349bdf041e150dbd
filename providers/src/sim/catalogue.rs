//! The sim provider's built-in catalogue: plans, zones and (zero) prices of the simulated cloud.
//!
//! | plan     | cores | memory MB | storage GB |
//! |----------|-------|-----------|------------|
//! | `small`  | 1     | 1024      | 25         |
//! | `medium` | 2     | 4096      | 50         |
//! | `large`  | 4     | 8192      | 100        |
//!
//! Zones: `sim-a`, `sim-b`, `sim-c`. Every plan costs 0.0 in currency `SIM`: it is a simulation.

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
    PLANS
        .iter()
        .map(|&(name, ..)| Pricing {
            plan: name.to_string(),
            zone: None,
            hourly: 0.0,
            monthly: 0.0,
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
