//! prov's taskservs: implementations of the engine's `TaskServ` trait (currently `sim`).

pub mod sim;

use prov_engine::registry::Registry;

/// Registers every taskserv implementation of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.taskserv("sim", sim::factory());
}
