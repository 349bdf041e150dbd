//! `StateError`: every way a state operation can fail, each with a message a user can act on.

use std::fmt;
use std::path::PathBuf;

use crate::{format_utc, LockInfo};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Another process (or another open in this one) holds the state lock.
    #[error("{}", LockedDisplay(holder))]
    Locked { holder: Box<LockInfo> },

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

    #[error("invalid state path {path}: {detail}", path = path.display())]
    InvalidPath { path: PathBuf, detail: String },
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
                "state is locked by another process (lock file {} names no holder): \
                 wait for it to finish or retry with --lock-timeout",
                h.path.display()
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
