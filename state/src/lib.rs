//! prov's state store: what has been applied, one record per resource, behind small traits
//! (`StateRead`, `StateWrite`, `StateLock`) with sled (embedded default) and in-memory backends.
//!
//! Invariants every backend keeps:
//! - a commit writes only the records it names, atomically and durably, and bumps the serial
//!   by exactly one: never a rewrite of the whole state;
//! - a snapshot is consistent: it never mixes records of two commits;
//! - unreadable data is an error naming the backend and record, never a panic and never silently
//!   an empty state (that would make the next plan recreate everything).

mod error;
mod lock;
mod memory;
mod record;
mod sled_store;
mod util;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use error::StateError;
pub use memory::MemoryStore;
pub use record::{ResourceRecord, RECORD_FORMAT_VERSION};
pub use sled_store::{lock_path_for, SledStore, STATE_FORMAT_VERSION};
pub use util::format_utc;

/// Identity and version of a state. `lineage` is fixed when the state is created (random 128-bit
/// hex; empty for a state that does not exist yet); `serial` counts commits. A saved plan records
/// both and applies only when they still match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateMeta {
    pub lineage: String,
    pub serial: u64,
}

/// The whole state at one serial.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    pub meta: StateMeta,
    /// Keyed by address.
    pub resources: BTreeMap<String, ResourceRecord>,
    /// Workspace outputs as last applied.
    pub outputs: serde_json::Map<String, Value>,
}

/// One change within a commit.
#[derive(Clone, Debug, PartialEq)]
// Changes live only as short slices handed to `commit`; boxing records would burden every caller.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Insert or replace the record at `record.address`.
    Put(ResourceRecord),
    /// Remove the record at this address; removing an absent record is not an error.
    Delete(String),
}

pub trait StateRead: Send + Sync {
    /// The full state, consistent at one serial.
    fn snapshot(&self) -> Result<Snapshot, StateError>;
    /// Lineage and serial only; cheap.
    fn meta(&self) -> Result<StateMeta, StateError>;
    /// One record, without reading the rest of the state.
    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError>;
}

pub trait StateWrite: Send + Sync {
    /// Applies all changes atomically and durably (fsync'd before returning); bumps serial by
    /// one (also for an empty list); returns the new serial. Changes apply in order, so a later
    /// change to the same address wins. On error nothing was applied, except that a failure of
    /// the final fsync leaves it unknown whether the commit survives a crash.
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError>;
    /// Replaces the workspace outputs, with the same guarantees as `commit`.
    fn set_outputs(&self, outputs: serde_json::Map<String, Value>) -> Result<u64, StateError>;
}

pub trait StateStore: StateRead + StateWrite {}
impl<T: StateRead + StateWrite + ?Sized> StateStore for T {}

/// A store that holds an exclusive lock on its state from open until drop. Backends take the lock
/// in their `open`, honouring `OpenOptions::lock_timeout`, and report a busy lock as
/// `StateError::Locked` naming the holder.
pub trait StateLock {
    fn lock_info(&self) -> &LockInfo;
}

/// Who holds a state lock. Written as JSON into the lock file so a waiting prov can say who it
/// is waiting for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Random id of this acquisition (hex).
    pub id: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// The command holding it: "plan", "apply", "state list"...
    pub operation: String,
    /// Unix seconds.
    pub since: u64,
    /// The lock file.
    pub path: PathBuf,
}

/// How to open a persistent store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenOptions {
    /// The command opening the store ("plan", "apply", "state list"...), shown to anyone who
    /// finds the state locked.
    pub operation: String,
    /// How long to wait for a held lock; zero fails at once.
    pub lock_timeout: Duration,
    /// Create the state if it does not exist. False for read-only commands: a missing state is
    /// then an empty snapshot (lineage "", serial 0) and no database is created.
    pub create: bool,
}

impl OpenOptions {
    /// Options for `operation` that create the state and fail at once on a held lock.
    pub fn new(operation: impl Into<String>) -> Self {
        OpenOptions {
            operation: operation.into(),
            lock_timeout: Duration::ZERO,
            create: true,
        }
    }
}
