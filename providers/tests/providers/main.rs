//! The providers crate's one integration-test binary: one module per provider.

#[cfg(feature = "aws")]
mod aws;
mod exec;
mod local;
mod sim;
mod upcloud;

use prov_engine::traits::Provider;

/// Every plan the provider offers has a price in every zone it offers (as the plan's cost
/// estimate looks prices up: `prov_engine::plan::cost::find_price`).
pub async fn assert_prices_every_plan(p: &dyn Provider) {
    let prices = p.get_pricing().await.unwrap();
    let plans = p.get_plans().await.unwrap();
    let zones = p.get_zones().await.unwrap();
    assert!(!plans.is_empty() && !zones.is_empty());
    for plan in &plans {
        for zone in &zones {
            let found = prov_engine::plan::cost::find_price(&prices, &plan.name, &zone.name);
            assert!(
                found.is_some_and(|x| x.monthly >= 0.0 && !x.currency.is_empty()),
                "{}: no price for plan {} in zone {}: {prices:?}",
                p.name(),
                plan.name,
                zone.name
            );
        }
    }
}
