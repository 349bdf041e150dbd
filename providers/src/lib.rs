//! prov's providers: implementations of the engine's `Provider` trait (currently `sim`).

pub mod sim;

use prov_engine::registry::Registry;

/// Registers every provider of this crate under its name (`sim`).
pub fn register_all(reg: &mut Registry) {
    reg.provider("sim", sim::factory());
}
