//! The providers crate's one integration-test binary: one module per provider.

mod exec;
mod local;
mod sim;
mod upcloud;
