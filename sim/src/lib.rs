//! The simulated world shared by the sim provider, the sim taskserv and the sim cluster.
//!
//! Three implementations in three crates act on one set of files, `<workspace>/.prov/sim/`, and
//! read one set of environment variables; this crate is the one place that knows both:
//!
//! - [`env`] — `PROV_SIM_LATENCY_MS` and the `PROV_SIM_FAIL_*` lists, parsed once per process
//!   snapshot ([`SimEnv`]).
//! - [`layout`] — where every object lives under `.prov/sim` ([`Layout`]) and the `flock` stripe
//!   protocol every writer follows ([`lock_stripe`]).
//! - [`world`] — the servers and the out-of-band edit API (`prov sim ...`, tests, drift demos).
//!
//! The engine does not know this crate; the extension crates and the CLI depend on it.

#![deny(clippy::print_stdout, clippy::print_stderr)]
// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

pub mod env;
pub mod layout;
pub mod world;

pub use env::SimEnv;
pub use layout::{lock_stripe, Layout, StripeLock};
pub use world::{SimServer, World, WorldError, WorldResult};
