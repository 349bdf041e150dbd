//! prov's clusters: implementations of the engine's `Cluster` trait (currently `sim`).

pub mod sim;

use prov_engine::registry::Registry;

/// Registers every cluster implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.cluster("sim", sim::factory());
}
