//! prov's engine: Nickel config → resource model → graph → diff → plan → concurrent apply, and the extension traits.

pub mod config;
pub mod model;
pub mod refs;
pub mod registry;
pub mod traits;
pub mod error;
pub mod graph;
pub mod load;
pub mod plan;
pub mod apply;
pub mod events;
pub mod ops;
