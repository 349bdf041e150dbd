//! prov's state store: what has been applied, one record per resource, behind small traits
//! (`StateRead`, `StateWrite`, `StateLock`) with sled (embedded default), PostgreSQL (team
//! backend) and in-memory backends.
//!
//! Invariants every backend keeps:
//! - a commit writes only the records it names, atomically and durably, and bumps the serial
//!   by exactly one: never a rewrite of the whole state; the versions it replaces go to the
//!   record's history in the same transaction (at most `HISTORY_LIMIT` per address);
//! - a snapshot is consistent: it never mixes records of two commits, and reading one takes no
//!   lock (plans, drift, show and output run beside applies);
//! - every commit notes, per address it writes, the serial it was written at, so staleness is
//!   judged per resource (`StateRead::changed_since`);
//! - a store opened with `LockScope::Resources` writes only addresses it locked first
//!   (`StateWrite::lock_resources`); those locks die with their holder (sled: its pid;
//!   PostgreSQL: its session).
//! - unreadable data is an error naming the backend and record, never a panic and never silently
//!   an empty state (that would make the next plan recreate everything).

#![deny(clippy::print_stdout, clippy::print_stderr)]
#![warn(clippy::too_many_lines)]

mod depth;
mod dump;
mod error;
mod lock;
mod memory;
mod pg;
mod record;
mod sled_store;
mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use depth::{
    find_too_deep, from_slice, from_slice_deep, read_deep, value_depth, PathSegment, TooDeep,
    MAX_VALUE_DEPTH, RECOVERY_DEPTH,
};
pub use dump::{StateDump, DUMP_FORMAT, DUMP_FORMAT_VERSION};
pub use error::{BackendErrorKind, StateError};
pub use lock::{lock_path_for, ForceUnlock};
pub use memory::MemoryStore;
pub use pg::{force_unlock_pg, pg_lock_key, redact_conn, PgStore, PG_SCHEMA_VERSION};
pub use record::{Deposed, ResourceRecord, RECORD_FORMAT_VERSION};
pub use sled_store::{force_unlock_sled, SledStore, STATE_FORMAT_VERSION};
pub use util::{compact_value, format_utc, now_secs, parse_duration, Compact};

/// Decodes one record as sled and the memory store keep it (`{"format_version": N, "record":
/// {...}}`), upgrading older formats, exactly as every read of a state does; `address` is the
/// key it was found under. For tools and fuzzing: the stores call the same decoder themselves.
pub fn decode_record(address: &str, stored: &[u8]) -> Result<ResourceRecord, StateError> {
    record::decode("stored record", address, stored)
}

/// [`decode_record`] leaving the record's `config` null, as plans read records.
pub fn decode_record_without_config(
    address: &str,
    stored: &[u8],
) -> Result<ResourceRecord, StateError> {
    record::decode_without_config("stored record", address, stored)
}

/// [`decode_record`] for a record kept as its format version and body apart (PostgreSQL's two
/// columns).
pub fn decode_record_body(
    address: &str,
    format_version: u32,
    body: &[u8],
) -> Result<ResourceRecord, StateError> {
    record::decode_body("stored record", address, format_version, body)
}

/// How many earlier versions of one address a state keeps; a commit that adds one more drops
/// the oldest in the same transaction, so history costs O(1) per change and stays bounded.
pub const HISTORY_LIMIT: usize = 20;

/// Identity and version of a state. `lineage` is fixed when the state is created (random 128-bit
/// hex; empty for a state that does not exist yet) and changes only when a dump of another
/// lineage is pushed with force; `serial` counts commits. A saved plan records both and applies
/// only when they still match.
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
    /// Operations recorded as started and not yet resolved, keyed by address.
    pub pending: BTreeMap<String, PendingOp>,
}

/// An operation recorded before it starts, so a crash leaves a trace that the next run resolves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingOp {
    pub address: String,
    /// "create" | "delete" | "update"
    pub operation: String,
    /// "server" | "taskserv" | "cluster" | "component"
    pub kind: String,
    pub implementation: String,
    /// Known for delete/update.
    pub provider_id: Option<String>,
    /// What was requested (resolved attributes), to find or adopt the object later.
    pub spec: Value,
    pub dependencies: Vec<String>,
    /// Unix seconds.
    pub started_at: u64,
    /// The lock id of the apply that started it.
    pub run_id: String,
}

/// The operations a `PendingOp` may record.
pub const PENDING_OPERATIONS: &[&str] = &["create", "delete", "update"];

/// One change within a commit.
#[derive(Clone, Debug, PartialEq)]
// Changes live only as short slices handed to `commit`; boxing records would burden every caller.
#[allow(clippy::large_enum_variant)]
pub enum Change {
    /// Insert or replace the record at `record.address`; a replaced record goes to history.
    Put(ResourceRecord),
    /// Remove the record at this address (it goes to history); removing an absent record is not
    /// an error.
    Delete(String),
    /// Record that an operation on `op.address` is starting (replaces any earlier one there).
    PutPending(PendingOp),
    /// The pending operation at this address finished or was resolved; clearing an absent one is
    /// not an error.
    ClearPending(String),
}

/// One earlier version of a record, kept when a commit replaced or deleted it.
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// The serial of the commit that replaced it.
    pub serial: u64,
    /// When that commit ran (unix seconds).
    pub at: u64,
    /// The version that was replaced, upgraded to the current record format.
    pub record: ResourceRecord,
    /// "update" | "delete"
    pub replaced_by: String,
}

/// How [`StateRead::snapshot_with`] reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// Leave every record's `config` null: what a plan reads (it diffs attributes and resolves
    /// outputs). Decoding the configurations is about a third of a large snapshot's time and
    /// memory. Never write such records back: re-read the ones to keep with
    /// [`StateRead::record`].
    pub without_configs: bool,
    /// Decode on the calling thread only, for a caller that keeps the other cores busy itself
    /// (more decoding threads would then only add per-thread heaps to the peak memory).
    pub one_thread: bool,
}

pub trait StateRead: Send + Sync {
    /// The state, consistent at one serial, read as `opts` says.
    fn snapshot_with(&self, opts: ReadOptions) -> Result<Snapshot, StateError>;
    /// The full state, consistent at one serial.
    fn snapshot(&self) -> Result<Snapshot, StateError> {
        self.snapshot_with(ReadOptions::default())
    }
    /// [`StateRead::snapshot`] with every record's `config` left null (see
    /// [`ReadOptions::without_configs`]).
    fn snapshot_without_configs(&self) -> Result<Snapshot, StateError> {
        self.snapshot_with(ReadOptions {
            without_configs: true,
            ..ReadOptions::default()
        })
    }
    /// Lineage and serial only; cheap.
    fn meta(&self) -> Result<StateMeta, StateError>;
    /// One record, without reading the rest of the state.
    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError>;
    /// Earlier versions of the record at `address`, newest first (at most `HISTORY_LIMIT`).
    /// History outlives the record: a deleted address still has its history.
    fn history(&self, address: &str) -> Result<Vec<HistoryEntry>, StateError>;
    /// The whole state as a versioned, portable document (`prov state pull`).
    fn dump(&self) -> Result<StateDump, StateError> {
        Ok(StateDump::from(self.snapshot()?))
    }
    /// Of `addresses`, those a commit after `serial` wrote: a record put or deleted, a pending
    /// note recorded or cleared (a push counts as writing every address it holds). A saved plan
    /// made at `serial` is stale exactly when one of the addresses it changes or reads is here.
    fn changed_since(
        &self,
        addresses: &BTreeSet<String>,
        serial: u64,
    ) -> Result<BTreeSet<String>, StateError>;
    /// Resource locks held now by live holders other than this store, by address (see
    /// [`StateWrite::lock_resources`]): a plan leaves their pending notes alone (they are steps
    /// running now, not left over from a crash).
    fn resource_locks(&self) -> Result<BTreeMap<String, LockInfo>, StateError>;
}

pub trait StateWrite: Send + Sync {
    /// Applies all changes atomically and durably (fsync'd before returning); bumps serial by
    /// one (also for an empty list); returns the new serial. Changes apply in order, so a later
    /// change to the same address wins (and only the version before the commit goes to history).
    /// On error nothing was applied, except that a failure of the final fsync (or a lost
    /// connection during COMMIT) leaves it unknown whether the commit survives.
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError>;
    /// Replaces the workspace outputs, with the same guarantees as `commit`.
    fn set_outputs(&self, outputs: serde_json::Map<String, Value>) -> Result<u64, StateError>;
    /// Replaces the whole state with `dump` (`prov state push`), atomically, returning the new
    /// serial.
    ///
    /// Without `force` it refuses a dump of another lineage (`LineageMismatch`) unless this
    /// state is still empty (serial 0: nothing to lose, which is how a state moves to a new
    /// backend), and a dump whose serial is older than this state's (`OlderSerial`: someone
    /// committed after it was pulled). An equal serial is accepted: pull, edit, push.
    ///
    /// On success the state takes the dump's lineage and serial `max(ours, theirs) + 1`, as
    /// Terraform's push does: the serial never goes back, and saved plans made against either
    /// side no longer match. Records the push replaces or removes go to history like any commit.
    fn replace_all(&self, dump: &StateDump, force: bool) -> Result<u64, StateError>;
    /// Locks `addresses` for this store until it is dropped, waiting up to `timeout` for any that
    /// another live holder has (zero: fail at once) and then failing with
    /// `StateError::ResourcesLocked`, naming the holder and the overlapping addresses. All or
    /// nothing: a failed call holds none of them (so two waiting writers cannot deadlock).
    /// Addresses this store holds already are kept. A store opened with
    /// `LockScope::Workspace` holds every address already; this is then a no-op.
    fn lock_resources(
        &self,
        addresses: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<(), StateError>;
    /// Replaces the workspace outputs with what `compute` makes of the state as it is at this
    /// commit, atomically: no commit lands between the read and the write, so concurrent
    /// writers never overwrite outputs with values resolved from records that have since
    /// changed. Bumps the serial like `set_outputs`.
    fn update_outputs(
        &self,
        compute: &mut dyn FnMut(&Snapshot) -> serde_json::Map<String, Value>,
    ) -> Result<u64, StateError>;
}

pub trait StateStore: StateRead + StateWrite {}
impl<T: StateRead + StateWrite + ?Sized> StateStore for T {}

/// A store's lock identity. With `LockScope::Workspace` it holds an exclusive lock on the whole
/// state from open until drop (backends take it in their `open`, honouring
/// `OpenOptions::lock_timeout`, and report a busy lock as `StateError::Locked` naming the
/// holder); with `LockScope::Resources` this is who it is when it locks resources.
pub trait StateLock {
    fn lock_info(&self) -> &LockInfo;
}

/// Who holds a state lock. Written as JSON beside the lock (sled: into the lock file; PostgreSQL:
/// into `prov_locks`) so a waiting prov can say who it is waiting for.
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
    /// Where the lock is: the lock file for sled (".prov/state.lock"),
    /// `postgresql://host:port/db (workspace W)` for PostgreSQL (never with a password).
    pub location: String,
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
    /// then an empty snapshot (lineage "", serial 0) and nothing is created (no sled database;
    /// no PostgreSQL tables or rows).
    pub create: bool,
    /// Read without taking the lock and write nothing (not even the lock holder's row), so a
    /// read-only database role suffices (`prov plan --untrusted`); writes are refused. Each
    /// snapshot is still consistent (PostgreSQL: one repeatable-read transaction; sled: read
    /// in a session under the lock file, handed over to whoever waits for it).
    pub read_only: bool,
    /// What a writing store locks (ignored with `read_only`).
    pub scope: LockScope,
}

/// What a writing store locks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LockScope {
    /// The whole state, exclusively, from open until drop: for commands that rewrite it whole
    /// (`state push`). Fails (or waits) while anyone holds resource locks.
    #[default]
    Workspace,
    /// Nothing at open but a shared claim: every write needs its addresses locked first
    /// ([`StateWrite::lock_resources`]), so writers of disjoint resources run at once (apply,
    /// destroy, refresh, import, state rm/mv).
    Resources,
}

impl OpenOptions {
    /// Options for `operation` that create the state and fail at once on a held lock.
    pub fn new(operation: impl Into<String>) -> Self {
        OpenOptions {
            operation: operation.into(),
            lock_timeout: Duration::ZERO,
            create: true,
            read_only: false,
            scope: LockScope::Workspace,
        }
    }
}
