//! prov's engine: Nickel config → resource model → graph → diff → plan → concurrent apply, and the extension traits.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

pub mod apply;
pub mod attrs;
pub mod cluster_ops;
mod committer;
pub mod concurrency;
pub mod config;
pub mod crypt;
pub mod diff;
pub mod drift;
pub mod error;
pub mod events;
pub mod extension;
pub mod findings;
pub mod fsutil;
pub mod graph;
pub mod live;
pub mod load;
pub mod model;
pub mod ops;
pub mod ownership;
pub mod pending;
pub mod plan;
pub mod policy;
pub mod records;
pub mod refs;
pub mod registry;
pub mod sensitive;
pub mod state_edit;
pub mod subprocess;
pub mod taskserv_ops;
pub mod testing;
pub mod traits;
pub mod workspace;
