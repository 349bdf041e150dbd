//! The taskservs crate's one integration-test binary: one module per taskserv implementation.

mod sim;
