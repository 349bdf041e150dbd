//! The providers crate's one integration-test binary: one module per provider.

mod local;
mod sim;
