//! The taskservs crate's one integration-test binary: one module per taskserv implementation,
//! plus the transports (local, SSH against a real sshd) and a fixture provider for them.

mod catalog;
mod extension;
mod fixture;
mod sim;
mod transport;
