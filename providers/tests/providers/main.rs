//! The providers crate's one integration-test binary: one module per provider.

#[cfg(feature = "aws")]
mod aws;
mod exec;
mod local;
mod sim;
mod upcloud;
