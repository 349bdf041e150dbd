//! The local provider's catalogue: plans, the one zone, and prices (all zero: it is this machine).
//!
//! | plan     | cores | memory MB | storage GB |
//! |----------|-------|-----------|------------|
//! | `small`  | 1     | 512       | 0          |
//! | `medium` | 2     | 2048      | 0          |
//! | `large`  | 4     | 4096      | 0          |
//!
//! As root the cores and memory are enforced as cgroup limits on the sandbox's processes (see
//! [`super::cgroup`]: cgroup v2 where it offers the cpu and memory controllers, else cgroup v1);
//! otherwise they are labels. Storage is the host's disk, without a quota (0). Zone: `local`.
//! Price: 0.0 USD per hour and month.

use prov_engine::traits::{PlanInfo, Pricing, Zone};

/// (name, cores, memory MB, storage GB).
pub const PLANS: &[(&str, u32, u64, u64)] = &[
    ("small", 1, 512, 0),
    ("medium", 2, 2048, 0),
    ("large", 4, 4096, 0),
];

pub const ZONE: &str = "local";
pub const CURRENCY: &str = "USD";

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
    vec![Zone {
        name: ZONE.to_string(),
        description: "this machine".to_string(),
    }]
}

pub fn pricing() -> Vec<Pricing> {
    PLANS
        .iter()
        .map(|&(name, ..)| Pricing {
            plan: name.to_string(),
            zone: Some(ZONE.to_string()),
            hourly: 0.0,
            monthly: 0.0,
            currency: CURRENCY.to_string(),
        })
        .collect()
}

/// A plan's (cores, memory MB).
pub fn size(plan: &str) -> Option<(u32, u64)> {
    PLANS.iter().find(|p| p.0 == plan).map(|p| (p.1, p.2))
}

/// Checks a plan name; the error names the bad value and the valid ones.
pub fn check_plan(plan: &str) -> Result<(), String> {
    if PLANS.iter().any(|p| p.0 == plan) {
        Ok(())
    } else {
        let valid: Vec<&str> = PLANS.iter().map(|p| p.0).collect();
        Err(format!(
            "plan: unknown plan {plan:?} (valid plans: {})",
            valid.join(", ")
        ))
    }
}

/// Checks a zone name.
pub fn check_zone(zone: &str) -> Result<(), String> {
    if zone == ZONE {
        Ok(())
    } else {
        Err(format!("zone: unknown zone {zone:?} (valid zones: {ZONE})"))
    }
}
