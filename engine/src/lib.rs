//! prov's engine: Nickel config → resource model → graph → diff → plan → concurrent apply, and the extension traits.

pub mod apply;
pub mod attrs;
pub mod cluster_ops;
pub mod concurrency;
pub mod config;
pub mod crypt;
pub mod drift;
pub mod error;
pub mod events;
pub mod extension;
pub mod fsutil;
pub mod graph;
pub mod live;
pub mod load;
pub mod model;
pub mod ops;
pub mod ownership;
pub mod plan;
pub mod policy;
pub mod refresh;
pub mod refs;
pub mod registry;
pub mod targets;
pub mod taskserv_ops;
pub mod traits;
