//! `StateError`: every way a state operation can fail, each with a message a user can act on.

use std::fmt;
use std::path::PathBuf;

use crate::{format_utc, LockInfo};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process (or another open in this one) holds the state lock.
    #[error("{}", LockedDisplay(holder))]
    Locked { holder: Box<LockInfo> },

    /// Resources a writer needs are locked by another live writer (`lock_resources`).
    #[error("{}", ResourcesLockedDisplay { holder, addresses })]
    ResourcesLocked {
        holder: Box<LockInfo>,
        /// The overlapping addresses, sorted.
        addresses: Vec<String>,
    },

    /// A write to addresses this store did not lock (`LockScope::Resources`).
    #[error(
        "{backend}: `{operation}` tried to write {} without locking {} first; nothing was \
         written (this is a bug in prov)",
        addresses.join(", "),
        if addresses.len() == 1 { "it" } else { "them" }
    )]
    NotLocked {
        backend: String,
        operation: String,
        addresses: Vec<String>,
    },

    /// The stored state is damaged. `backend` names it ("sled state at .prov/state"), `address`
    /// the record where one is known.
    #[error("{backend} is corrupt{}: {detail}; what to do: {what_to_do}",
            address.as_ref().map(|a| format!(" (record \"{a}\")")).unwrap_or_default())]
    Corrupt {
        backend: String,
        address: Option<String>,
        detail: String,
        what_to_do: String,
    },

    /// The state (or one record in it, when `address` is set) was written by a newer prov.
    #[error("{}{backend} has format version {found}, but this prov reads versions up to \
             {supported}: it was written by a newer prov, use that one (or newer)",
            address.as_ref().map(|a| format!("record \"{a}\" in ")).unwrap_or_default())]
    UnsupportedFormat {
        backend: String,
        address: Option<String>,
        found: u32,
        supported: u32,
    },

    #[error("{path}: {source}", path = path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An error reported by sled that is not known to mean corruption.
    #[error("{backend}: {source}")]
    Sled {
        backend: String,
        #[source]
        source: sled::Error,
    },

    #[error("cannot encode the record of \"{address}\": {source}")]
    Encode {
        address: String,
        #[source]
        source: serde_json::Error,
    },

    /// A change that no backend may store, e.g. a record with an empty address.
    #[error("invalid state change: {detail}")]
    InvalidChange { detail: String },

    /// A write to a state that was opened with `create: false` and does not exist.
    #[error(
        "{backend} does not exist and was opened for \"{operation}\" without creating it, \
             so nothing can be written to it (this is a bug in prov)"
    )]
    NotCreated { backend: String, operation: String },

    /// A write to a store opened read-only (`OpenOptions::read_only`).
    #[error("{backend} was opened read-only for `{operation}`: nothing can be written to it")]
    ReadOnly { backend: String, operation: String },

    #[error("invalid state path {path}: {detail}", path = path.display())]
    InvalidPath { path: PathBuf, detail: String },

    /// A problem reaching or using a database backend (PostgreSQL): `backend` names it
    /// ("PostgreSQL state at 127.0.0.1:5432/prov (workspace default)", never with a password).
    #[error("{backend}: {detail}; what to do: {what_to_do}")]
    Backend {
        backend: String,
        kind: BackendErrorKind,
        detail: String,
        what_to_do: String,
    },

    /// A connection string that does not parse; `detail` has any password redacted.
    #[error("invalid PostgreSQL connection string: {detail}")]
    InvalidConnection { detail: String },

    /// `replace_all` (push) of a dump from another state, without force.
    #[error(
        "the pushed state has lineage {theirs}, but this state has lineage {ours}: it is another \
         state (push it with --force to replace this one anyway)"
    )]
    LineageMismatch { ours: String, theirs: String },

    /// `replace_all` (push) of a dump older than the state, without force.
    #[error(
        "the pushed state has serial {theirs}, older than this state's serial {ours}: the state \
         changed after it was pulled; pull it again and redo the edit (or push with --force to \
         overwrite those changes)"
    )]
    OlderSerial { ours: u64, theirs: u64 },

    /// A state dump that cannot be read or pushed.
    #[error("{input} is not a usable prov state dump: {detail}")]
    InvalidDump { input: String, detail: String },

    /// force-unlock with a lock id that is not the current holder's.
    #[error("{}", LockIdMismatchDisplay { location, given, holder: holder.as_deref() })]
    LockIdMismatch {
        location: String,
        given: String,
        holder: Option<Box<LockInfo>>,
    },

    /// force-unlock of a lock that a live process holds: only that process can release it.
    #[error(
        "the lock at {} is held by a live process: {detail}; stop that process (prov cannot \
         release another process's lock; it is released when the process exits)",
        holder.location
    )]
    LockHeld {
        holder: Box<LockInfo>,
        detail: String,
    },
}

/// What went wrong with a database backend, for callers that react differently (retry, exit
/// code, hint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendErrorKind {
    /// No server answered (closed port, unknown host, timeout).
    Unreachable,
    /// The server refused the credentials.
    Authentication,
    /// The role may not create or use prov's tables.
    Permission,
    /// The database named in the connection string does not exist.
    NoDatabase,
    /// The session ended while in use (server restart, terminated backend); its lock went with it.
    ConnectionLost,
    /// The server reported something else.
    Other,
}

/// Formats the holder so a user knows whom to ask, or what to wait for.
struct LockedDisplay<'a>(&'a LockInfo);

impl fmt::Display for LockedDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        if h.pid == 0 && h.id.is_empty() {
            // Holder wrote no info: a non-prov process (or a prov killed before writing it).
            return write!(
                f,
                "state is locked by another process ({} names no holder): \
                 wait for it to finish or retry with --lock-timeout",
                h.location
            );
        }
        write!(
            f,
            "state is locked by {}@{} (pid {}, operation \"{}\", since {}, lock id {}): \
             wait for it to finish or retry with --lock-timeout",
            h.user,
            h.host,
            h.pid,
            h.operation,
            format_utc(h.since),
            h.id
        )
    }
}

/// The holder and the addresses it holds that the caller wanted (at most 10 listed).
struct ResourcesLockedDisplay<'a> {
    holder: &'a LockInfo,
    addresses: &'a [String],
}

impl fmt::Display for ResourcesLockedDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 10;
        let h = self.holder;
        let n = self.addresses.len();
        let mut list = self.addresses[..n.min(SHOWN)].join(", ");
        if n > SHOWN {
            list.push_str(&format!(" and {} more", n - SHOWN));
        }
        let what = if n == 1 { "resource" } else { "resources" };
        if h.pid == 0 && h.id.is_empty() {
            return write!(
                f,
                "{n} {what} this command changes or reads are locked by another process ({} \
                 names no holder): {list}; wait for it to finish or retry with --lock-timeout",
                h.location
            );
        }
        write!(
            f,
            "{n} {what} this command changes or reads are locked by {}@{} (pid {}, operation \
             \"{}\", since {}, lock id {}): {list}; wait for it to finish or retry with \
             --lock-timeout",
            h.user,
            h.host,
            h.pid,
            h.operation,
            format_utc(h.since),
            h.id
        )
    }
}

struct LockIdMismatchDisplay<'a> {
    location: &'a str,
    given: &'a str,
    holder: Option<&'a LockInfo>,
}

impl fmt::Display for LockIdMismatchDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.holder {
            Some(h) => write!(
                f,
                "lock id {} does not match the holder of {} (lock id {}, {}@{} pid {}, \
                 operation \"{}\", since {}); nothing was unlocked",
                self.given,
                self.location,
                h.id,
                h.user,
                h.host,
                h.pid,
                h.operation,
                format_utc(h.since)
            ),
            None => write!(
                f,
                "lock id {} does not match: {} records no holder (the state is not locked); \
                 nothing was unlocked",
                self.given, self.location
            ),
        }
    }
}
