//! `SledStore`: the embedded default backend, a sled database in the workspace (`.prov/state`),
//! guarded by the lock file `.prov/state.lock`, with a lock table for resource-level writers.
//!
//! Layout (state format version 2):
//! - tree `records`: address -> record envelope (JSON, see record.rs), one entry per resource;
//! - tree `meta`: `format_version`, `lineage`, `serial`, `outputs`, each a JSON value, and
//!   `previous_lineage` once a push replaced the lineage;
//! - tree `pending` (since 2): address -> `PendingOp` JSON;
//! - tree `history` (since 2): `address NUL seq(u64 BE)` -> replaced version (record.rs'
//!   `encode_history`), and `address SOH` -> `next seq, count` (two u64 BE), so a commit appends
//!   and trims with point reads and writes only (sled transactions cannot scan);
//! - tree `versions` (since 3): address -> the serial (u64 BE) of the last commit that wrote its
//!   record or pending note: per-resource staleness of saved plans;
//! - tree `locks` (since 3): address -> `LockEntry` JSON (holder, pid, the pid's start time):
//!   resource locks of writers opened with `LockScope::Resources`; an entry whose process is
//!   gone is free (and overwritten by the next writer);
//! - file `prov-guard.json` in the state dir: `{"lineage", "serial"}` of the last commit.
//!
//! Version 1 had only `records` and `meta`, version 2 no `versions` and `locks`; a writing open
//! upgrades either by setting the version (the new trees start empty), so an older prov refuses
//! the state rather than ignore pending operations or resource locks it does not know.
//!
//! Sharing: sled lets one process open a database at a time. A workspace-scope store keeps it
//! open (and `.prov/state.lock` taken) from open until drop. Resource-scope and read-only stores
//! open it in sessions under the lock file and keep a session open between operations until
//! another process (or store) waits for the state — it says so in the waiting room,
//! `.prov/state.lock.wait` (see lock.rs) — or the session has been idle for a second: then the
//! next operation opens a new one. So plans and applies of many processes interleave, each
//! snapshot and commit whole, while one apply alone opens sled once rather than per commit
//! (every open costs a snapshot of the whole database: commits would grow with the state).
//!
//! Why the guard file: sled recovers a damaged or truncated log by silently dropping everything
//! after the first bad entry, so a damaged state would open as an older or empty one and the
//! next plan would recreate resources that exist. The guard is rewritten (not fsync'd) after each
//! durable commit, so it never runs ahead of what sled made durable; if sled ever reports an
//! older serial or a missing lineage, data was lost and we say so instead of carrying on.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::dump::push_serial;
use crate::lock::{
    hostname, lock_path_for, pid_alive, try_flock, FileLock, ForceUnlock, LockEntry, WaitRoom,
};
use crate::record::{
    decode, decode_all, decode_history, decode_pending, decode_without_config, encode_commit,
    encode_history, envelope, EncodedCommit, REPLACED_BY_DELETE, REPLACED_BY_UPDATE,
};
use crate::util::{create_private_dir_all, now_secs, random_hex};
use crate::{
    Change, HistoryEntry, LockInfo, LockScope, OpenOptions, PendingOp, ReadOptions, ResourceRecord,
    Snapshot, StateDump, StateError, StateLock, StateMeta, StateRead, StateWrite, HISTORY_LIMIT,
};
use std::os::unix::io::AsRawFd;

type TxError = ConflictableTransactionError<StateError>;

/// Version of the sled layout described in the module docs.
pub const STATE_FORMAT_VERSION: u32 = 3;

const RECORDS_TREE: &str = "records";
const META_TREE: &str = "meta";
const PENDING_TREE: &str = "pending";
const HISTORY_TREE: &str = "history";
const VERSIONS_TREE: &str = "versions";
const LOCKS_TREE: &str = "locks";
/// The key (no address is empty) under which `versions` keeps the serial its tracking began
/// at, when the state is older than it.
const TRACKED_SINCE: &[u8] = b"";
const K_FORMAT: &str = "format_version";
const K_LINEAGE: &str = "lineage";
const K_PREV_LINEAGE: &str = "previous_lineage";
const K_SERIAL: &str = "serial";
const K_OUTPUTS: &str = "outputs";
const GUARD_FILE: &str = "prov-guard.json";

/// How long to retry sled's own directory lock after ours was granted: sled's background IO
/// threads of a store dropped a moment ago in this process can still hold it briefly.
const SLED_LOCK_GRACE: Duration = Duration::from_secs(3);

/// A sled state. With `LockScope::Workspace` the database stays open, and the lock file held,
/// from open until drop. Otherwise (resource scope, read-only) reads and commits run in
/// sessions: take the lock file, open sled, and keep both only until someone else waits for
/// them (`Sessions`), so any number of processes share the state (sled itself lets one process
/// open it at a time); who writes which resource is then the lock table's business
/// (`lock_resources`).
pub struct SledStore {
    at: Where,
    operation: String,
    lock_path: PathBuf,
    /// Sessions may create the database (a writing open).
    create: bool,
    read_only: bool,
    scope: LockScope,
    lock_timeout: Duration,
    /// Who this store is, in the lock file's note and the lock table.
    info: LockInfo,
    /// Workspace scope: the database and the lock file, held until drop.
    held: Option<Held>,
    /// Resource scope: the addresses this store locked.
    resources: Mutex<BTreeSet<String>>,
    /// Resource scope and read-only: the session kept between operations.
    sessions: Arc<Sessions>,
    /// The thread that hands a kept session over (`Sessions::keep`), once one was kept.
    keeper: Mutex<Option<JoinHandle<()>>>,
}

/// A session kept open between operations, and the waiting room that tells when to let it go.
struct Sessions {
    kept: Mutex<Option<Kept>>,
    room: WaitRoom,
    /// A kept session unused this long is closed (`KEEP_IDLE` unless a test says otherwise).
    idle: Duration,
    /// Sessions opened so far.
    opened: std::sync::atomic::AtomicU64,
    stop: Mutex<bool>,
    wake: Condvar,
}

struct Kept {
    held: Held,
    used: Instant,
}

/// How often the keeper looks into the waiting room: a waiting process gets the state this
/// long (at most) after the operation in progress, if any, ends.
const KEEPER_POLL: Duration = Duration::from_millis(5);

/// A session unused this long is closed even if nobody announced they wait (a prov from before
/// the waiting room, `flock(1)`): such a waiter is not kept out for long.
const KEEP_IDLE: Duration = Duration::from_secs(1);

/// How often a session waiting for the lock file retries, at most: holders that keep a session
/// let it go within `KEEPER_POLL` of seeing a waiter.
const SESSION_POLL: Duration = Duration::from_millis(10);

impl Sessions {
    /// The keeper thread: closes the kept session when someone waits or it has been idle.
    fn keep(&self) {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            stop = match self.wake.wait_timeout(stop, KEEPER_POLL) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
            if *stop {
                return;
            }
            // An operation in progress looks into the room itself when it ends.
            let mut kept = match self.kept.try_lock() {
                Ok(k) => k,
                Err(TryLockError::Poisoned(e)) => e.into_inner(),
                Err(TryLockError::WouldBlock) => continue,
            };
            if kept
                .as_ref()
                .is_some_and(|k| k.used.elapsed() >= self.idle || self.room.occupied())
            {
                kept.take();
            }
        }
    }
}

/// An open database and the lock file guarding it; sled is closed (its drop flushes) before the
/// lock file is let go, so the next holder never finds sled's own directory lock still taken.
struct Held {
    /// `None`: the state does not exist and was opened with `create: false`.
    db: Option<Db>,
    _lock: FileLock,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.db.take();
    }
}

struct Db {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    pending: sled::Tree,
    history: sled::Tree,
    versions: sled::Tree,
    locks: sled::Tree,
    /// Commits take it exclusively, snapshots shared: sled iteration alone could see half of a
    /// concurrent commit (of this process; other processes are kept out by the lock file).
    gate: RwLock<()>,
    guard: Mutex<Guard>,
}

struct Guard {
    file: File,
    lineage: String,
    written: u64,
}

/// The trees of one sled transaction.
struct Tx<'a> {
    records: &'a TransactionalTree,
    meta: &'a TransactionalTree,
    pending: &'a TransactionalTree,
    history: &'a TransactionalTree,
    versions: &'a TransactionalTree,
}

/// Which state an error is about, for messages.
struct Where {
    /// "sled state at .prov/state"
    backend: String,
    dir: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct GuardNote {
    lineage: String,
    serial: u64,
}

/// How much longer than `--lock-timeout` a session waits for the lock file: other sessions hold
/// it for one read or commit (milliseconds), so only a holder that keeps it (a workspace-scope
/// store, an older prov) makes a session wait this long.
const SESSION_GRACE: Duration = Duration::from_secs(30);

/// How often a waiting `lock_resources` or workspace-scope open looks again.
const LOCK_POLL: Duration = Duration::from_millis(100);

impl SledStore {
    /// Opens (or with `opts.create` creates) the sled state in `state_dir`. With
    /// `LockScope::Workspace` (and not `read_only`) it takes the lock file first and keeps it,
    /// failing while any live holder has resource locks; otherwise it only makes sure the state
    /// exists (when creating). The lock's directory is created (0700) even when `create` is
    /// false, but the database never is.
    pub fn open(state_dir: &Path, opts: &OpenOptions) -> Result<SledStore, StateError> {
        let lock_path = lock_path_for(state_dir)?;
        if let Some(parent) = lock_path.parent() {
            create_private_dir_all(parent)?;
        }
        let at = Where {
            backend: format!("sled state at {}", state_dir.display()),
            dir: state_dir.to_path_buf(),
        };
        let info = crate::lock::new_holder(&opts.operation, lock_path.display().to_string());
        let sessions = Arc::new(Sessions {
            kept: Mutex::new(None),
            room: WaitRoom::new(&lock_path),
            idle: KEEP_IDLE,
            opened: std::sync::atomic::AtomicU64::new(0),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let mut store = SledStore {
            at,
            operation: opts.operation.clone(),
            lock_path,
            create: opts.create && !opts.read_only,
            read_only: opts.read_only,
            scope: opts.scope,
            lock_timeout: opts.lock_timeout,
            info,
            held: None,
            resources: Mutex::new(BTreeSet::new()),
            sessions,
            keeper: Mutex::new(None),
        };
        if opts.read_only || opts.scope == LockScope::Resources {
            if store.create {
                // Existence is decided under the lock file, so a concurrent creator cannot race
                // us; the lineage is fixed now, before anything is tagged with it. The session
                // is kept for what follows, like any other (closing and reopening a new state
                // cost a sled snapshot written and synced).
                store.with_db(|_| Ok(()))?;
            }
            return Ok(store);
        }
        store.held = Some(store.hold()?);
        Ok(store)
    }

    /// Takes the lock file for good, once no live holder has resource locks.
    fn hold(&mut self) -> Result<Held, StateError> {
        let deadline = Instant::now() + self.lock_timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let lock = self.lock_file(remaining, LOCK_POLL)?;
            self.info = lock.info().clone();
            // Existence is decided under the lock, so a concurrent creator cannot race us.
            let db = open_db(&self.at, self.create)?;
            let busy = match &db {
                Some(db) => self.live_locks(db)?.into_iter().next(),
                None => None,
            };
            let Some((_, holder)) = busy else {
                return Ok(Held { db, _lock: lock });
            };
            drop(Held { db, _lock: lock });
            if Instant::now() >= deadline {
                return Err(StateError::Locked {
                    holder: Box::new(holder),
                });
            }
            std::thread::sleep(LOCK_POLL.min(deadline - Instant::now()));
        }
    }

    /// The lock file: at once if free, else waiting in the waiting room (so a holder keeping a
    /// session hands it over) for up to `timeout`.
    fn lock_file(&self, timeout: Duration, poll: Duration) -> Result<FileLock, StateError> {
        if let Some(lock) = FileLock::try_acquire(&self.lock_path, &self.operation)? {
            return Ok(lock);
        }
        let _waiting = self.sessions.room.enter()?;
        FileLock::acquire_polling(&self.lock_path, &self.operation, timeout, poll)
    }

    /// A session: the lock file, then sled.
    fn session(&self) -> Result<Held, StateError> {
        let lock = self.lock_file(self.lock_timeout + SESSION_GRACE, SESSION_POLL)?;
        let db = open_db(&self.at, self.create)?;
        self.sessions
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(Held { db, _lock: lock })
    }

    /// Runs `f` on the database: the held one, the kept session's, or a new session's (kept
    /// afterwards unless someone waits for the state, `f` failed or it does not exist).
    fn with_db<T>(
        &self,
        f: impl FnOnce(Option<&Db>) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if let Some(h) = &self.held {
            return f(h.db.as_ref());
        }
        let mut kept = self.sessions.kept.lock().unwrap_or_else(|e| e.into_inner());
        let held = match kept.take() {
            Some(k) => k.held,
            None => self.session()?,
        };
        let out = f(held.db.as_ref());
        if out.is_ok() && held.db.is_some() && !self.sessions.room.occupied() && self.keeping() {
            *kept = Some(Kept {
                held,
                used: Instant::now(),
            });
        }
        out
    }

    /// Starts the keeper thread if it is not running; false if it cannot run (then sessions
    /// are not kept: nobody would hand them over).
    fn keeping(&self) -> bool {
        let mut keeper = self.keeper.lock().unwrap_or_else(|e| e.into_inner());
        if keeper.is_none() {
            let sessions = Arc::clone(&self.sessions);
            *keeper = std::thread::Builder::new()
                .name("prov-sled-keeper".to_string())
                .spawn(move || sessions.keep())
                .ok();
        }
        keeper.is_some()
    }

    /// [`Self::with_db`] for a write: refused read-only, and the database must exist.
    fn with_writable<T>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, StateError>,
    ) -> Result<T, StateError> {
        if self.read_only {
            return Err(StateError::ReadOnly {
                backend: self.at.backend.clone(),
                operation: self.operation.clone(),
            });
        }
        self.with_db(|db| {
            let db = db.ok_or_else(|| StateError::NotCreated {
                backend: self.at.backend.clone(),
                operation: self.operation.clone(),
            })?;
            f(db)
        })
    }

    pub fn lock_info(&self) -> &LockInfo {
        &self.info
    }

    /// How many sessions this store opened (sled opened under the lock file), for tests and
    /// benchmarks of the sharing protocol.
    pub fn sessions_opened(&self) -> u64 {
        self.sessions
            .opened
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Keeps an idle session open this long (default one second) unless someone waits: a test
    /// setting hours shows that waiters are handed the state, not merely outwait the holder.
    /// Only before the store's first read or commit.
    pub fn keep_idle(mut self, idle: Duration) -> Self {
        if let Some(s) = Arc::get_mut(&mut self.sessions) {
            s.idle = idle;
        }
        self
    }

    /// False when the state does not exist (opened with `create: false`).
    pub fn exists(&self) -> bool {
        self.with_db(|db| Ok(db.is_some())).unwrap_or(false)
    }

    /// Refuses a commit to addresses this store did not lock (resource scope).
    fn check_locked(&self, commit: &EncodedCommit) -> Result<(), StateError> {
        if self.held.is_some() {
            return Ok(());
        }
        let held = self.resources.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<String> = commit
            .addresses()
            .filter(|a| !held.contains(*a))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(StateError::NotLocked {
            backend: self.at.backend.clone(),
            operation: self.operation.clone(),
            addresses: missing,
        })
    }

    /// Live entries of the lock table other than this store's, by address.
    fn live_locks(&self, db: &Db) -> Result<BTreeMap<String, LockInfo>, StateError> {
        let mut out = BTreeMap::new();
        for item in db.locks.iter() {
            let (key, raw) = item.map_err(|e| self.at.sled(e))?;
            let Ok(entry) = serde_json::from_slice::<LockEntry>(&raw) else {
                continue;
            };
            if entry.holder.id != self.info.id && entry.alive() {
                let mut holder = entry.holder;
                holder.location = self.lock_path.display().to_string();
                out.insert(String::from_utf8_lossy(&key).into_owned(), holder);
            }
        }
        Ok(out)
    }

    /// Runs one sled transaction over all trees under the exclusive gate, then makes it
    /// durable. `f` gets the current serial and returns the new one, which is stored with it.
    fn transact(
        &self,
        db: &Db,
        f: impl Fn(&Tx<'_>, u64) -> Result<u64, TxError>,
    ) -> Result<u64, StateError> {
        let serial = {
            let _excl = db.gate.write().unwrap_or_else(|e| e.into_inner());
            self.transact_gated(db, f)?
        };
        self.make_durable(db, serial, None)
    }

    /// The transaction of `transact`, for a caller that holds the gate exclusively.
    fn transact_gated(
        &self,
        db: &Db,
        f: impl Fn(&Tx<'_>, u64) -> Result<u64, TxError>,
    ) -> Result<u64, StateError> {
        (
            &db.records,
            &db.meta,
            &db.pending,
            &db.history,
            &db.versions,
        )
            .transaction(|(records, meta, pending, history, versions)| {
                let current = match meta.get(K_SERIAL)? {
                    Some(raw) => self
                        .at
                        .decode_meta::<u64>(K_SERIAL, &raw)
                        .map_err(TxError::Abort)?,
                    None => 0,
                };
                let tx = Tx {
                    records,
                    meta,
                    pending,
                    history,
                    versions,
                };
                let next = f(&tx, current)?;
                meta.insert(K_SERIAL, encode_meta(&next))?;
                Ok(next)
            })
            .map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => self.at.sled(e),
            })
    }

    /// Flushes (outside the gate, so concurrent committers share fsyncs; once this returns,
    /// every commit up to `serial` is on disk) and notes the serial (and a pushed `lineage`) in
    /// the guard.
    fn make_durable(&self, db: &Db, serial: u64, lineage: Option<&str>) -> Result<u64, StateError> {
        db.db.flush().map_err(|e| self.at.sled(e))?;
        db.note_serial(serial, lineage);
        Ok(serial)
    }

    /// Applies an encoded commit at `serial` inside a transaction, keeping replaced versions
    /// and noting the serial of every address written.
    fn apply(
        &self,
        tx: &Tx<'_>,
        commit: &EncodedCommit,
        serial: u64,
        at: u64,
    ) -> Result<(), TxError> {
        for (address, body) in &commit.records {
            let new = body.as_deref().map(envelope);
            let old = match &new {
                Some(raw) => tx.records.insert(address.as_bytes(), raw.as_slice())?,
                None => tx.records.remove(address.as_bytes())?,
            };
            let Some(old) = old else { continue };
            // Re-putting the identical record replaces nothing worth keeping.
            if new.as_deref() == Some(&old[..]) {
                continue;
            }
            let why = if new.is_some() {
                REPLACED_BY_UPDATE
            } else {
                REPLACED_BY_DELETE
            };
            self.push_history(tx.history, address, encode_history(serial, at, why, &old))?;
        }
        for (address, raw) in &commit.pending {
            match raw {
                Some(raw) => tx.pending.insert(address.as_bytes(), raw.as_slice())?,
                None => tx.pending.remove(address.as_bytes())?,
            };
        }
        for address in commit.addresses() {
            tx.versions
                .insert(address.as_bytes(), &serial.to_be_bytes()[..])?;
        }
        Ok(())
    }

    /// Appends one history entry for `address` and drops the oldest beyond `HISTORY_LIMIT`:
    /// two point reads and at most three writes, whatever the state's size.
    fn push_history(
        &self,
        history: &TransactionalTree,
        address: &str,
        entry: Vec<u8>,
    ) -> Result<(), TxError> {
        let index_key = history_key(address, None);
        let (next, count) = match history.get(&index_key)? {
            Some(raw) if raw.len() == 16 => (
                u64::from_be_bytes(raw[..8].try_into().expect("8 bytes")),
                u64::from_be_bytes(raw[8..].try_into().expect("8 bytes")),
            ),
            Some(_) => {
                return Err(TxError::Abort(
                    self.at
                        .corrupt(format!("the history index of \"{address}\" is damaged")),
                ))
            }
            None => (0, 0),
        };
        history.insert(history_key(address, Some(next)), entry)?;
        let (next, mut count) = (next + 1, count + 1);
        if count > HISTORY_LIMIT as u64 {
            history.remove(history_key(address, Some(next - count)))?;
            count -= 1;
        }
        let mut index = next.to_be_bytes().to_vec();
        index.extend_from_slice(&count.to_be_bytes());
        history.insert(index_key, index)?;
        Ok(())
    }
}

/// `address NUL seq` for an entry, `address SOH` for the address's index (see module docs).
fn history_key(address: &str, seq: Option<u64>) -> Vec<u8> {
    let mut key = address.as_bytes().to_vec();
    match seq {
        Some(seq) => {
            key.push(0);
            key.extend_from_slice(&seq.to_be_bytes());
        }
        None => key.push(1),
    }
    key
}

impl StateLock for SledStore {
    fn lock_info(&self) -> &LockInfo {
        &self.info
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        self.release_resource_locks();
        self.stop_keeping();
    }
}

/// Lock-table writes go in batches of this many: sled keeps every version of the tree nodes a
/// batch rewrites until the batch ends (one batch of 10,000 lock entries held ~40 MB, the peak
/// of a 10,000-server destroy). The pieces need no atomicity of their own: only this process
/// has sled open while it writes them, and an entry whose holder is gone counts as free.
const LOCK_BATCH: usize = 256;

/// Inserts `value` at each of `keys` (removes them when None), [`LOCK_BATCH`] at a time.
fn apply_in_pieces<'k>(
    tree: &sled::Tree,
    keys: impl IntoIterator<Item = &'k str>,
    value: Option<&[u8]>,
) -> sled::Result<()> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for k in keys {
        match value {
            Some(v) => batch.insert(k.as_bytes(), v),
            None => batch.remove(k.as_bytes()),
        }
        n += 1;
        if n == LOCK_BATCH {
            tree.apply_batch(std::mem::take(&mut batch))?;
            n = 0;
        }
    }
    if n > 0 {
        tree.apply_batch(batch)?;
    }
    Ok(())
}

impl SledStore {
    /// Removes this store's entries from the lock table (resource scope), best effort: entries
    /// of a holder that is gone count as free anyway.
    fn release_resource_locks(&mut self) {
        let held = std::mem::take(self.resources.get_mut().unwrap_or_else(|e| e.into_inner()));
        if held.is_empty() || self.held.is_some() {
            return;
        }
        let _ = self.with_db(|db| {
            let Some(db) = db else { return Ok(()) };
            let mine = held.iter().filter(|a| {
                db.locks.get(a.as_bytes()).is_ok_and(|raw| {
                    raw.is_some_and(|raw| {
                        serde_json::from_slice::<LockEntry>(&raw)
                            .is_ok_and(|e| e.holder.id == self.info.id)
                    })
                })
            });
            apply_in_pieces(&db.locks, mine.map(String::as_str), None).map_err(|e| self.at.sled(e))
        });
    }

    /// Stops the keeper and closes the kept session (sled flushed, then the lock file let go).
    fn stop_keeping(&mut self) {
        *self.sessions.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.sessions.wake.notify_all();
        if let Some(keeper) = self
            .keeper
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = keeper.join();
        }
        self.sessions
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("backend", &self.at.backend)
            .field("scope", &self.scope)
            .field("read_only", &self.read_only)
            .field("lock", &self.info)
            .finish()
    }
}

/// What a snapshot reads under the gate (or session), decoded afterwards.
type RawSnapshot = (
    StateMeta,
    Option<sled::IVec>,
    Vec<(String, sled::IVec)>,
    BTreeMap<String, PendingOp>,
);

impl SledStore {
    /// The raw bytes of a snapshot; the caller holds the gate (or the session alone uses `db`).
    fn read_raw(&self, db: &Db) -> Result<RawSnapshot, StateError> {
        let meta = self.meta_of(db)?;
        let outputs = db.meta.get(K_OUTPUTS).map_err(|e| self.at.sled(e))?;
        let mut raw = Vec::new();
        for item in db.records.iter() {
            let (key, bytes) = item.map_err(|e| self.at.sled(e))?;
            let address = String::from_utf8(key.to_vec()).map_err(|_| {
                self.at.corrupt(format!(
                    "a record key is not UTF-8 ({})",
                    String::from_utf8_lossy(&key)
                ))
            })?;
            raw.push((address, bytes));
        }
        let mut pending = BTreeMap::new();
        for item in db.pending.iter() {
            let (key, bytes) = item.map_err(|e| self.at.sled(e))?;
            let address = String::from_utf8_lossy(&key).into_owned();
            let op = decode_pending(&self.at.backend, &address, &bytes)?;
            pending.insert(address, op);
        }
        Ok((meta, outputs, raw, pending))
    }

    /// Decodes what `read_raw` read, as `opts` says.
    fn decode_raw(&self, raw: RawSnapshot, opts: ReadOptions) -> Result<Snapshot, StateError> {
        let decode_one = if opts.without_configs {
            decode_without_config
        } else {
            decode
        };
        let (meta, outputs, raw, pending) = raw;
        let outputs = match outputs {
            Some(bytes) => self
                .at
                .decode_meta::<Map<String, Value>>(K_OUTPUTS, &bytes)?,
            None => Map::new(),
        };
        let backend = self.at.backend.as_str();
        Ok(Snapshot {
            meta,
            resources: decode_all(raw, opts, |(a, r)| decode_one(backend, a, r))?,
            outputs,
            pending,
        })
    }

    fn meta_of(&self, db: &Db) -> Result<StateMeta, StateError> {
        let get = |key: &str| db.meta.get(key).map_err(|e| self.at.sled(e));
        let serial = match get(K_SERIAL)? {
            Some(raw) => self.at.decode_meta(K_SERIAL, &raw)?,
            None => 0,
        };
        let lineage = match get(K_LINEAGE)? {
            Some(raw) => self.at.decode_meta(K_LINEAGE, &raw)?,
            None => return Err(self.at.corrupt("its lineage is gone".to_string())),
        };
        Ok(StateMeta { lineage, serial })
    }
}

impl StateRead for SledStore {
    fn snapshot_with(&self, opts: ReadOptions) -> Result<Snapshot, StateError> {
        // Read the raw bytes under the gate and session (consistent with one serial), decode
        // outside both.
        let raw = self.with_db(|db| {
            let Some(db) = db else { return Ok(None) };
            let _shared = db.gate.read().unwrap_or_else(|e| e.into_inner());
            self.read_raw(db).map(Some)
        })?;
        match raw {
            Some(raw) => self.decode_raw(raw, opts),
            None => Ok(Snapshot::default()),
        }
    }

    fn meta(&self) -> Result<StateMeta, StateError> {
        self.with_db(|db| match db {
            Some(db) => self.meta_of(db),
            None => Ok(StateMeta::default()),
        })
    }

    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError> {
        let raw = self.with_db(|db| match db {
            Some(db) => db.records.get(address).map_err(|e| self.at.sled(e)),
            None => Ok(None),
        })?;
        raw.map(|raw| decode(&self.at.backend, address, &raw))
            .transpose()
    }

    fn history(&self, address: &str) -> Result<Vec<HistoryEntry>, StateError> {
        let raw = self.with_db(|db| {
            let Some(db) = db else { return Ok(Vec::new()) };
            let _shared = db.gate.read().unwrap_or_else(|e| e.into_inner());
            let mut prefix = address.as_bytes().to_vec();
            prefix.push(0);
            db.history
                .scan_prefix(prefix)
                .values()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.at.sled(e))
        })?;
        // Keys sort by sequence number, oldest first.
        raw.iter()
            .rev()
            .map(|r| decode_history(&self.at.backend, address, r))
            .collect()
    }

    fn changed_since(
        &self,
        addresses: &BTreeSet<String>,
        serial: u64,
    ) -> Result<BTreeSet<String>, StateError> {
        self.with_db(|db| {
            let mut out = BTreeSet::new();
            let Some(db) = db else { return Ok(out) };
            for a in addresses {
                let Some(raw) = db.versions.get(a.as_bytes()).map_err(|e| self.at.sled(e))? else {
                    continue;
                };
                let written = <[u8; 8]>::try_from(&raw[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| {
                        self.at
                            .corrupt(format!("the version of \"{a}\" is damaged"))
                    })?;
                if written > serial {
                    out.insert(a.clone());
                }
            }
            Ok(out)
        })
    }

    fn resource_locks(&self) -> Result<BTreeMap<String, LockInfo>, StateError> {
        self.with_db(|db| match db {
            Some(db) => self.live_locks(db),
            None => Ok(BTreeMap::new()),
        })
    }
}

impl StateWrite for SledStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = encode_commit(changes)?;
        self.check_locked(&encoded)?;
        let at = now_secs();
        self.with_writable(|db| {
            self.transact(db, |tx, current| {
                let next = current + 1;
                self.apply(tx, &encoded, next, at)?;
                Ok(next)
            })
        })
    }

    fn set_outputs(&self, outputs: Map<String, Value>) -> Result<u64, StateError> {
        crate::depth::check_outputs(&outputs)?;
        let raw = encode_meta(&outputs);
        self.with_writable(|db| {
            self.transact(db, |tx, current| {
                tx.meta.insert(K_OUTPUTS, raw.as_slice())?;
                Ok(current + 1)
            })
        })
    }

    fn update_outputs(
        &self,
        compute: &mut dyn FnMut(&Snapshot) -> Map<String, Value>,
    ) -> Result<u64, StateError> {
        self.with_writable(|db| {
            // Read, compute and write under one exclusive gate (and session): no commit lands
            // between them.
            let serial = {
                let _excl = db.gate.write().unwrap_or_else(|e| e.into_inner());
                let snap = self.decode_raw(
                    self.read_raw(db)?,
                    ReadOptions {
                        without_configs: true,
                        one_thread: true,
                    },
                )?;
                let outputs = compute(&snap);
                crate::depth::check_outputs(&outputs)?;
                let raw = encode_meta(&outputs);
                self.transact_gated(db, |tx, current| {
                    tx.meta.insert(K_OUTPUTS, raw.as_slice())?;
                    Ok(current + 1)
                })?
            };
            self.make_durable(db, serial, None)
        })
    }

    fn lock_resources(
        &self,
        addresses: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<(), StateError> {
        if self.read_only {
            return Err(StateError::ReadOnly {
                backend: self.at.backend.clone(),
                operation: self.operation.clone(),
            });
        }
        if self.held.is_some() {
            return Ok(());
        }
        let wanted: Vec<String> = {
            let held = self.resources.lock().unwrap_or_else(|e| e.into_inner());
            addresses
                .iter()
                .filter(|a| !held.contains(*a))
                .cloned()
                .collect()
        };
        if wanted.is_empty() {
            return Ok(());
        }
        let mine =
            serde_json::to_vec(&LockEntry::mine(&self.info)).expect("lock entries serialise");
        let deadline = Instant::now() + timeout;
        loop {
            // One session decides for all of them: taken together, or none.
            let conflicts = self.with_writable(|db| {
                let mut conflicts: Vec<(String, LockInfo)> = Vec::new();
                for a in &wanted {
                    let current = db.locks.get(a.as_bytes()).map_err(|e| self.at.sled(e))?;
                    let entry =
                        current.and_then(|raw| serde_json::from_slice::<LockEntry>(&raw).ok());
                    if let Some(e) = entry.filter(|e| e.holder.id != self.info.id && e.alive()) {
                        conflicts.push((a.clone(), e.holder));
                    }
                }
                if conflicts.is_empty() {
                    let keys = wanted.iter().map(String::as_str);
                    if let Err(e) = apply_in_pieces(&db.locks, keys, Some(&mine)) {
                        // None taken: what was written is removed again (best effort; entries
                        // of this process are free once it is gone anyway).
                        let _ = apply_in_pieces(&db.locks, wanted.iter().map(String::as_str), None);
                        return Err(self.at.sled(e));
                    }
                    db.db.flush().map_err(|e| self.at.sled(e))?;
                }
                Ok(conflicts)
            })?;
            if conflicts.is_empty() {
                self.resources
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(wanted);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut holder = conflicts[0].1.clone();
                holder.location = self.lock_path.display().to_string();
                let addresses = conflicts
                    .into_iter()
                    .filter(|(_, h)| h.id == holder.id)
                    .map(|(a, _)| a)
                    .collect();
                return Err(StateError::ResourcesLocked {
                    holder: Box::new(holder),
                    addresses,
                });
            }
            std::thread::sleep(LOCK_POLL.min(deadline - Instant::now()));
        }
    }

    fn replace_all(&self, dump: &StateDump, force: bool) -> Result<u64, StateError> {
        let mut commit = crate::record::encode_dump(dump)?;
        let outputs = encode_meta(&dump.outputs);
        let lineage_raw = encode_meta(&dump.lineage);
        let at = now_secs();
        let sled_err = |e| self.at.sled(e);
        self.with_writable(|db| {
            let _excl = db.gate.write().unwrap_or_else(|e| e.into_inner());
            // Read under the exclusive gate but outside the transaction: sled transactions
            // cannot scan, and nothing else writes meanwhile.
            for key in db.records.iter().keys() {
                let key = String::from_utf8_lossy(&key.map_err(sled_err)?).into_owned();
                commit.records.entry(key).or_insert(None);
            }
            let mut had_pending = false;
            for key in db.pending.iter().keys() {
                let key = String::from_utf8_lossy(&key.map_err(sled_err)?).into_owned();
                commit.pending.entry(key).or_insert(None);
                had_pending = true;
            }
            self.check_locked(&commit)?;
            let had_records = !db.records.is_empty();
            let serial = self.transact_gated(db, |tx, current| {
                let lineage: String = match tx.meta.get(K_LINEAGE)? {
                    Some(raw) => self
                        .at
                        .decode_meta(K_LINEAGE, &raw)
                        .map_err(TxError::Abort)?,
                    None => String::new(),
                };
                let outputs_empty = match tx.meta.get(K_OUTPUTS)? {
                    Some(raw) => self
                        .at
                        .decode_meta::<Map<String, Value>>(K_OUTPUTS, &raw)
                        .map_err(TxError::Abort)?
                        .is_empty(),
                    None => true,
                };
                let ours = StateMeta {
                    lineage: lineage.clone(),
                    serial: current,
                };
                let empty = !had_records && !had_pending && outputs_empty;
                let serial = push_serial(&ours, empty, dump, force, "the pushed state")
                    .map_err(TxError::Abort)?;
                self.apply(tx, &commit, serial, at)?;
                tx.meta.insert(K_OUTPUTS, outputs.as_slice())?;
                if lineage != dump.lineage {
                    // Lets open tell this push, if the guard note missed it, from copied-in files.
                    tx.meta.insert(K_PREV_LINEAGE, encode_meta(&lineage))?;
                    tx.meta.insert(K_LINEAGE, lineage_raw.as_slice())?;
                }
                Ok(serial)
            })?;
            drop(_excl);
            self.make_durable(db, serial, Some(&dump.lineage))
        })
    }
}

impl Db {
    /// Records in the guard that `serial` (of `lineage`, when a push changed it) is durable.
    /// Best effort: the commit already is, and failing it now would make the caller believe it
    /// was not.
    fn note_serial(&self, serial: u64, lineage: Option<&str>) {
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(lineage) = lineage {
            guard.lineage = lineage.to_string();
        }
        if serial <= guard.written {
            return;
        }
        if write_guard(&guard.file, &guard.lineage, serial).is_ok() {
            guard.written = serial;
        }
    }
}

/// Opens the database under an already held lock. `Ok(None)`: it does not exist and `create`
/// is false.
fn open_db(at: &Where, create: bool) -> Result<Option<Db>, StateError> {
    if !state_dir_ready(at, create)? {
        return Ok(None);
    }
    let guard_path = at.dir.join(GUARD_FILE);
    let guard_note = read_guard(&guard_path)?;
    let db = open_sled(at)?;
    let sled_err = |e| at.sled(e);
    let tree = |name: &str| db.open_tree(name).map_err(sled_err);
    let (records, meta, pending) = (tree(RECORDS_TREE)?, tree(META_TREE)?, tree(PENDING_TREE)?);
    let (history, versions, locks) = (tree(HISTORY_TREE)?, tree(VERSIONS_TREE)?, tree(LOCKS_TREE)?);

    let upgrade = older_format(at, &meta)? && create;
    let found = read_meta(at, &meta)?;
    let serial = found.serial;
    let lineage = match reconcile_lineage(at, found, guard_note.as_ref(), &guard_path)? {
        Some(lineage) => lineage,
        None => {
            if !records.is_empty() {
                return Err(at.corrupt(
                    "it holds records but no lineage (its metadata is lost)".to_string(),
                ));
            }
            // Never initialised (first use, or a crash during creation).
            if !create {
                return Ok(None);
            }
            initialise(at, &db, &meta)?
        }
    };
    if upgrade {
        upgrade_format(at, &db, &meta, &versions, serial)?;
    }
    let guard_is_current = guard_note
        .as_ref()
        .is_some_and(|n| n.lineage == lineage && n.serial == serial);
    let file = open_guard(&guard_path, !guard_is_current, &lineage, serial)?;
    Ok(Some(Db {
        db,
        records,
        meta,
        pending,
        history,
        versions,
        locks,
        gate: RwLock::new(()),
        guard: Mutex::new(Guard {
            file,
            lineage,
            written: serial,
        }),
    }))
}

/// Makes sure the state directory is there: false when it is missing and `create` is false.
fn state_dir_ready(at: &Where, create: bool) -> Result<bool, StateError> {
    let dir = at.dir.as_path();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(true),
        Ok(_) => Err(at.corrupt("it is not a directory".to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if create {
                create_private_dir_all(dir)?;
            }
            Ok(create)
        }
        Err(source) => Err(StateError::Io {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// True when the state is of an older format (which a writing open upgrades); an error when
/// it is of a newer one than this prov knows.
fn older_format(at: &Where, meta: &sled::Tree) -> Result<bool, StateError> {
    let Some(raw) = meta.get(K_FORMAT).map_err(|e| at.sled(e))? else {
        return Ok(false);
    };
    let found: u32 = at.decode_meta(K_FORMAT, &raw)?;
    if found > STATE_FORMAT_VERSION {
        return Err(StateError::UnsupportedFormat {
            backend: at.backend.clone(),
            address: None,
            found,
            supported: STATE_FORMAT_VERSION,
        });
    }
    // Versions 1 -> 2 -> 3 only add trees, which now exist; a read-only open leaves the mark.
    Ok(found < STATE_FORMAT_VERSION)
}

/// The identity the metadata tree holds.
struct FoundMeta {
    lineage: Option<String>,
    serial: u64,
    previous_lineage: Option<String>,
}

fn read_meta(at: &Where, meta: &sled::Tree) -> Result<FoundMeta, StateError> {
    let get = |key: &str| meta.get(key).map_err(|e| at.sled(e));
    Ok(FoundMeta {
        lineage: match get(K_LINEAGE)? {
            Some(raw) => Some(at.decode_meta::<String>(K_LINEAGE, &raw)?),
            None => None,
        },
        serial: match get(K_SERIAL)? {
            Some(raw) => at.decode_meta::<u64>(K_SERIAL, &raw)?,
            None => 0,
        },
        previous_lineage: match get(K_PREV_LINEAGE)? {
            Some(raw) => Some(at.decode_meta::<String>(K_PREV_LINEAGE, &raw)?),
            None => None,
        },
    })
}

/// The state's lineage, checked against the guard note (see the module docs); None when the
/// state was never initialised.
fn reconcile_lineage(
    at: &Where,
    found: FoundMeta,
    guard_note: Option<&GuardNote>,
    guard_path: &Path,
) -> Result<Option<String>, StateError> {
    let serial = found.serial;
    match (found.lineage, guard_note) {
        (Some(lineage), Some(note)) => {
            // A push replaced the lineage and the process died before updating the note.
            let pushed = found.previous_lineage.as_deref() == Some(note.lineage.as_str());
            if lineage != note.lineage && !pushed {
                return Err(at.corrupt(format!(
                    "its data belongs to lineage {lineage}, but {} says this directory last held \
                     lineage {} (files from another state were copied in?); if that is what you \
                     intended, delete {}",
                    guard_path.display(),
                    note.lineage,
                    guard_path.display()
                )));
            }
            if serial < note.serial {
                return Err(at.corrupt(format!(
                    "it went back from serial {} to serial {serial}: sled dropped damaged or \
                     truncated data when opening it, so recent changes are lost (a deliberately \
                     restored older backup needs {} deleted)",
                    note.serial,
                    guard_path.display()
                )));
            }
            Ok(Some(lineage))
        }
        (Some(lineage), None) => Ok(Some(lineage)),
        (None, Some(note)) => Err(at.corrupt(format!(
            "its metadata is gone, though it last held serial {} of lineage {}: sled found \
             no valid data in its files (truncated or overwritten?)",
            note.serial, note.lineage
        ))),
        (None, None) => Ok(None),
    }
}

/// Writes a new state's metadata (a fresh lineage at serial 0) durably.
fn initialise(at: &Where, db: &sled::Db, meta: &sled::Tree) -> Result<String, StateError> {
    let sled_err = |e| at.sled(e);
    let lineage = random_hex(16);
    let mut batch = sled::Batch::default();
    batch.insert(K_FORMAT, encode_meta(&STATE_FORMAT_VERSION));
    batch.insert(K_LINEAGE, encode_meta(&lineage));
    batch.insert(K_SERIAL, encode_meta(&0u64));
    batch.insert(K_OUTPUTS, encode_meta(&Map::new()));
    meta.apply_batch(batch).map_err(sled_err)?;
    db.flush().map_err(sled_err)?;
    // sled syncs its files but not the directory entries that name them.
    let dir = at.dir.as_path();
    sync_dir(dir)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(lineage)
}

/// Marks an older state as of this format (its new trees exist by now).
fn upgrade_format(
    at: &Where,
    db: &sled::Db,
    meta: &sled::Tree,
    versions: &sled::Tree,
    serial: u64,
) -> Result<(), StateError> {
    let sled_err = |e| at.sled(e);
    // Writes before now left no per-address serials: a plan older than this serial is
    // judged stale on any change (see `changed_since`).
    if versions.get(TRACKED_SINCE).map_err(sled_err)?.is_none() {
        versions
            .insert(TRACKED_SINCE, &serial.to_be_bytes()[..])
            .map_err(sled_err)?;
    }
    meta.insert(K_FORMAT, encode_meta(&STATE_FORMAT_VERSION))
        .map_err(sled_err)?;
    db.flush().map_err(sled_err)?;
    Ok(())
}

/// Opens the guard file, rewriting it when `rewrite` (it does not name this lineage and serial).
fn open_guard(
    guard_path: &Path,
    rewrite: bool,
    lineage: &str,
    serial: u64,
) -> Result<File, StateError> {
    let io_err = |source| StateError::Io {
        path: guard_path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(guard_path)
        .map_err(io_err)?;
    if rewrite {
        write_guard(&file, lineage, serial).map_err(io_err)?;
    }
    Ok(file)
}

/// `prov force-unlock LOCK_ID` for the lock table: removes the resource locks of holder
/// `lock_id` unless it is a live process on this host (then `LockHeld`, naming it). None: no
/// such holder (or no state).
pub(crate) fn clear_resource_locks(
    state_dir: &Path,
    lock_id: &str,
) -> Result<Option<crate::ForceUnlock>, StateError> {
    if lock_id.is_empty() {
        return Ok(None);
    }
    let mut store = SledStore::open(
        state_dir,
        &OpenOptions {
            create: false,
            read_only: true,
            ..OpenOptions::new("force-unlock")
        },
    )?;
    // A session kept between operations hands the lock file over at once; a whole-state
    // holder keeps it, and that is not this.
    let lock = match store.lock_file(KEEP_IDLE * 2, SESSION_POLL) {
        Ok(lock) => lock,
        Err(StateError::Locked { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    store.held = Some(Held {
        db: open_db(&store.at, false)?,
        _lock: lock,
    });
    store.with_db(|db| {
        let Some(db) = db else { return Ok(None) };
        let mut holder: Option<LockEntry> = None;
        let mut addresses = Vec::new();
        for item in db.locks.iter() {
            let (key, raw) = item.map_err(|e| store.at.sled(e))?;
            let Ok(entry) = serde_json::from_slice::<LockEntry>(&raw) else {
                continue;
            };
            if entry.holder.id == lock_id {
                addresses.push(String::from_utf8_lossy(&key).into_owned());
                holder = Some(entry);
            }
        }
        let Some(entry) = holder else { return Ok(None) };
        let mut info = entry.holder.clone();
        info.location = store.lock_path.display().to_string();
        if info.host == crate::lock::hostname() && entry.alive() {
            return Err(StateError::LockHeld {
                detail: format!(
                    "pid {} ({}@{}, operation \"{}\", since {}) holds {} resource lock(s)",
                    info.pid,
                    info.user,
                    info.host,
                    info.operation,
                    crate::format_utc(info.since),
                    addresses.len()
                ),
                holder: Box::new(info),
            });
        }
        apply_in_pieces(&db.locks, addresses.iter().map(String::as_str), None)
            .map_err(|e| store.at.sled(e))?;
        db.db.flush().map_err(|e| store.at.sled(e))?;
        Ok(Some(crate::ForceUnlock::ResourceLocksCleared {
            holder: info,
            addresses,
        }))
    })
}

/// `sled::open`, made safe against sled's panics on some damaged inputs, and patient with its
/// directory lock (see `SLED_LOCK_GRACE`).
fn open_sled(at: &Where) -> Result<sled::Db, StateError> {
    let deadline = Instant::now() + SLED_LOCK_GRACE;
    let mut torn_removed = false;
    loop {
        // We flush on every commit ourselves; sled's periodic flusher would add a thread.
        let config = sled::Config::new().path(&at.dir).flush_every_ms(None);
        match panic::catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(e)))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(5));
            }
            // sled writes a snapshot as `snap.LSN.generating` and renames it once complete, but
            // takes a leftover `.generating` file (a process killed while writing it: sled
            // writes one whenever an open finds the log advanced) for the newest snapshot and
            // fails its checksum. Such a file is never complete, and the snapshot before it and
            // the log are still there: removing it (nobody else has sled open: we hold the lock
            // file) lets sled recover from those.
            Ok(Err(e @ sled::Error::Corruption { .. })) if !torn_removed => {
                torn_removed = true;
                if !remove_torn_snapshots(&at.dir)? {
                    return Err(at.sled(e));
                }
            }
            Ok(Err(e)) => return Err(at.sled(e)),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".to_string());
                return Err(at.corrupt(format!("sled failed while reading it ({msg})")));
            }
        }
    }
}

/// Removes sled's unfinished snapshot files (`snap.*.generating`) in `dir`; true if there were
/// any.
fn remove_torn_snapshots(dir: &Path) -> Result<bool, StateError> {
    let io_err = |source| StateError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut removed = false;
    for entry in std::fs::read_dir(dir).map_err(io_err)? {
        let path = entry.map_err(io_err)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            std::fs::remove_file(&path).map_err(|source| StateError::Io {
                path: path.clone(),
                source,
            })?;
            removed = true;
        }
    }
    Ok(removed)
}

impl Where {
    fn corrupt(&self, detail: String) -> StateError {
        StateError::Corrupt {
            backend: self.backend.clone(),
            address: None,
            detail,
            what_to_do: format!(
                "restore {} from a backup copied while no prov was running; without one, move it \
                 aside to start from an empty state and reconcile the existing resources by hand \
                 (prov will no longer know about them)",
                self.dir.display()
            ),
        }
    }

    fn sled(&self, e: sled::Error) -> StateError {
        match e {
            sled::Error::Corruption { at: Some(at), .. } => {
                self.corrupt(format!("sled found damaged data at {at:?}"))
            }
            sled::Error::Corruption { at: None, .. } => {
                self.corrupt("sled found damaged data".to_string())
            }
            e => StateError::Sled {
                backend: self.backend.clone(),
                source: e,
            },
        }
    }

    fn decode_meta<T: serde::de::DeserializeOwned + Send>(
        &self,
        key: &str,
        raw: &[u8],
    ) -> Result<T, StateError> {
        crate::depth::from_slice_deep(raw)
            .map_err(|e| self.corrupt(format!("its metadata \"{key}\" does not decode ({e})")))
    }
}

fn encode_meta<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("meta values always serialise")
}

/// The guard note, if there is a readable one. A torn or empty note (crash while writing it)
/// counts as none: it only ever adds a check.
fn read_guard(path: &Path) -> Result<Option<GuardNote>, StateError> {
    match std::fs::read(path) {
        Ok(raw) => Ok(serde_json::from_slice(&raw).ok()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(StateError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| StateError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn write_guard(file: &File, lineage: &str, serial: u64) -> io::Result<()> {
    let note = encode_meta(&GuardNote {
        lineage: lineage.to_string(),
        serial,
    });
    // Same length or longer each time (serial only grows), so writing in place then trimming
    // never leaves a shorter valid-looking note.
    file.write_all_at(&note, 0)?;
    file.set_len(note.len() as u64)
}

/// `prov force-unlock LOCK_ID` for a sled state. The lock is an `flock` that dies with its
/// process, so it cannot go stale; only its holder note can. This clears a note whose lock is
/// free, refuses a `lock_id` that is not the note's (`LockIdMismatch`), and for a lock a live
/// process holds returns `LockHeld` naming it: prov cannot release another process's OS lock.
pub fn force_unlock_sled(state_dir: &Path, lock_id: &str) -> Result<ForceUnlock, StateError> {
    let path = lock_path_for(state_dir)?;
    let location = path.display().to_string();
    let io_err = |source| StateError::Io {
        path: path.clone(),
        source,
    };
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(StateError::LockIdMismatch {
                location,
                given: lock_id.to_string(),
                holder: None,
            })
        }
        Err(e) => return Err(io_err(e)),
    };
    // The note as written, dead holder or not: that is what the user is asking about.
    let note = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<LockInfo>(&b).ok());
    let mut holder = match note {
        Some(n) if n.id == lock_id && !lock_id.is_empty() => n,
        other => {
            // Not the lock file's holder: perhaps a resource-scope writer's (the lock table).
            if let Some(cleared) = clear_resource_locks(state_dir, lock_id)? {
                return Ok(cleared);
            }
            return Err(StateError::LockIdMismatch {
                location,
                given: lock_id.to_string(),
                holder: other.map(Box::new),
            });
        }
    };
    holder.location = location;
    if try_flock(&file).map_err(io_err)? {
        file.set_len(0).map_err(io_err)?;
        // SAFETY: plain syscall on a valid fd; closing the file would release it too.
        unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_UN) };
        return Ok(ForceUnlock::StaleNoteCleared(holder));
    }
    let detail = if holder.host != hostname() {
        format!(
            "the note names pid {} on host {}, and the lock file is locked by some process on \
             this host",
            holder.pid, holder.host
        )
    } else if pid_alive(holder.pid) {
        format!(
            "pid {} ({}@{}, operation \"{}\", since {})",
            holder.pid,
            holder.user,
            holder.host,
            holder.operation,
            crate::format_utc(holder.since)
        )
    } else {
        format!(
            "not pid {} named by the note (it has exited) but another process that wrote no \
             note; find it with `fuser {}`",
            holder.pid,
            path.display()
        )
    };
    Err(StateError::LockHeld {
        holder: Box::new(holder),
        detail,
    })
}
