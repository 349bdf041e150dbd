//! `SledStore`: the embedded default backend, a sled database in the workspace (`.prov/state`),
//! guarded by the lock file `.prov/state.lock`.
//!
//! Layout (state format version 1):
//! - tree `records`: address -> record envelope (JSON, see record.rs), one entry per resource;
//! - tree `meta`: `format_version`, `lineage`, `serial`, `outputs`, each a JSON value;
//! - file `prov-guard.json` in the state dir: `{"lineage", "serial"}` of the last commit.
//!
//! Why the guard file: sled recovers a damaged or truncated log by silently dropping everything
//! after the first bad entry, so a damaged state would open as an older or empty one and the
//! next plan would recreate resources that exist. The guard is rewritten (not fsync'd) after each
//! durable commit, so it never runs ahead of what sled made durable; if sled ever reports an
//! older serial or a missing lineage, data was lost and we say so instead of carrying on.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::lock::FileLock;
use crate::record::{decode, decode_all, encode_changes};
use crate::util::{create_private_dir_all, random_hex};
use crate::{
    Change, LockInfo, OpenOptions, ResourceRecord, Snapshot, StateError, StateLock, StateMeta,
    StateRead, StateWrite,
};

type TxError = ConflictableTransactionError<StateError>;

/// Version of the sled layout described in the module docs.
pub const STATE_FORMAT_VERSION: u32 = 1;

const RECORDS_TREE: &str = "records";
const META_TREE: &str = "meta";
const K_FORMAT: &str = "format_version";
const K_LINEAGE: &str = "lineage";
const K_SERIAL: &str = "serial";
const K_OUTPUTS: &str = "outputs";
const GUARD_FILE: &str = "prov-guard.json";

/// How long to retry sled's own directory lock after ours was granted: sled's background IO
/// threads of a store dropped a moment ago in this process can still hold it briefly.
const SLED_LOCK_GRACE: Duration = Duration::from_secs(3);

/// The lock file guarding `state_dir`: `<state_dir>.lock`, beside it (`.prov/state` ->
/// `.prov/state.lock`).
pub fn lock_path_for(state_dir: &Path) -> Result<PathBuf, StateError> {
    let name = state_dir
        .file_name()
        .ok_or_else(|| StateError::InvalidPath {
            path: state_dir.to_path_buf(),
            detail: "it must end in a directory name, like .prov/state".to_string(),
        })?;
    let mut lock_name = name.to_os_string();
    lock_name.push(".lock");
    Ok(state_dir.with_file_name(lock_name))
}

/// A sled state, locked from open until drop.
pub struct SledStore {
    at: Where,
    operation: String,
    /// `None`: the state does not exist and was opened with `create: false`.
    db: Option<Db>,
    /// Declared after `db` and released only once sled is closed (see `Drop`), so the next
    /// holder never finds sled's own directory lock still taken.
    lock: FileLock,
}

struct Db {
    db: sled::Db,
    records: sled::Tree,
    meta: sled::Tree,
    lineage: String,
    /// Commits take it exclusively, snapshots shared: sled iteration alone could see half of a
    /// concurrent commit.
    gate: RwLock<()>,
    guard: Mutex<Guard>,
}

struct Guard {
    file: File,
    written: u64,
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

impl SledStore {
    /// Opens (or with `opts.create` creates) the sled state in `state_dir`, taking the lock file
    /// beside it first. The lock's directory is created (0700) even when `create` is false, but
    /// the database never is.
    pub fn open(state_dir: &Path, opts: &OpenOptions) -> Result<SledStore, StateError> {
        let lock_path = lock_path_for(state_dir)?;
        if let Some(parent) = lock_path.parent() {
            create_private_dir_all(parent)?;
        }
        let lock = FileLock::acquire(&lock_path, &opts.operation, opts.lock_timeout)?;
        let at = Where {
            backend: format!("sled state at {}", state_dir.display()),
            dir: state_dir.to_path_buf(),
        };
        // Existence is decided under the lock, so a concurrent creator cannot race us.
        let db = open_db(&at, opts.create)?;
        Ok(SledStore {
            at,
            operation: opts.operation.clone(),
            db,
            lock,
        })
    }

    pub fn lock_info(&self) -> &LockInfo {
        self.lock.info()
    }

    /// False when the state does not exist (opened with `create: false`).
    pub fn exists(&self) -> bool {
        self.db.is_some()
    }

    fn db(&self) -> Result<&Db, StateError> {
        self.db.as_ref().ok_or_else(|| StateError::NotCreated {
            backend: self.at.backend.clone(),
            operation: self.operation.clone(),
        })
    }

    /// Runs one sled transaction over both trees, then makes it durable.
    fn transact(
        &self,
        f: impl Fn(&TransactionalTree, &TransactionalTree) -> Result<(), TxError>,
    ) -> Result<u64, StateError> {
        let db = self.db()?;
        let serial = {
            let _excl = db.gate.write().unwrap_or_else(|e| e.into_inner());
            (&db.records, &db.meta)
                .transaction(|(records, meta)| {
                    let current = match meta.get(K_SERIAL)? {
                        Some(raw) => self
                            .at
                            .decode_meta::<u64>(K_SERIAL, &raw)
                            .map_err(TxError::Abort)?,
                        None => 0,
                    };
                    let next = current + 1;
                    f(records, meta)?;
                    meta.insert(K_SERIAL, encode_meta(&next))?;
                    Ok(next)
                })
                .map_err(|e| match e {
                    TransactionError::Abort(e) => e,
                    TransactionError::Storage(e) => self.at.sled(e),
                })?
        };
        // Outside the gate so concurrent committers share fsyncs; once this returns, every
        // commit up to `serial` is on disk.
        db.db.flush().map_err(|e| self.at.sled(e))?;
        db.note_serial(serial);
        Ok(serial)
    }
}

impl StateLock for SledStore {
    fn lock_info(&self) -> &LockInfo {
        self.lock.info()
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Close sled (its drop flushes) before `lock` is released by the field drops that follow.
        self.db.take();
    }
}

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("backend", &self.at.backend)
            .field("exists", &self.db.is_some())
            .field("lock", self.lock.info())
            .finish()
    }
}

impl StateRead for SledStore {
    fn snapshot(&self) -> Result<Snapshot, StateError> {
        let Some(db) = &self.db else {
            return Ok(Snapshot::default());
        };
        // Read the raw bytes under the gate (consistent with one serial), decode outside it.
        let (meta, outputs, raw) = {
            let _shared = db.gate.read().unwrap_or_else(|e| e.into_inner());
            let meta = self.meta()?;
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
            (meta, outputs, raw)
        };
        let outputs = match outputs {
            Some(bytes) => self
                .at
                .decode_meta::<Map<String, Value>>(K_OUTPUTS, &bytes)?,
            None => Map::new(),
        };
        Ok(Snapshot {
            meta,
            resources: decode_all(&self.at.backend, raw)?,
            outputs,
        })
    }

    fn meta(&self) -> Result<StateMeta, StateError> {
        let Some(db) = &self.db else {
            return Ok(StateMeta::default());
        };
        let serial = match db.meta.get(K_SERIAL).map_err(|e| self.at.sled(e))? {
            Some(raw) => self.at.decode_meta(K_SERIAL, &raw)?,
            None => 0,
        };
        Ok(StateMeta {
            lineage: db.lineage.clone(),
            serial,
        })
    }

    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError> {
        let Some(db) = &self.db else {
            return Ok(None);
        };
        db.records
            .get(address)
            .map_err(|e| self.at.sled(e))?
            .map(|raw| decode(&self.at.backend, address, &raw))
            .transpose()
    }
}

impl StateWrite for SledStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = encode_changes(changes)?;
        self.transact(|records, _meta| {
            for (address, raw) in &encoded {
                match raw {
                    Some(raw) => records.insert(address.as_bytes(), raw.as_slice())?,
                    None => records.remove(address.as_bytes())?,
                };
            }
            Ok(())
        })
    }

    fn set_outputs(&self, outputs: Map<String, Value>) -> Result<u64, StateError> {
        let raw = encode_meta(&outputs);
        self.transact(|_records, meta| {
            meta.insert(K_OUTPUTS, raw.as_slice())?;
            Ok(())
        })
    }
}

impl Db {
    /// Records in the guard that `serial` is durable. Best effort: the commit already is, and
    /// failing it now would make the caller believe it was not.
    fn note_serial(&self, serial: u64) {
        let mut guard = self.guard.lock().unwrap_or_else(|e| e.into_inner());
        if serial <= guard.written {
            return;
        }
        if write_guard(&guard.file, &self.lineage, serial).is_ok() {
            guard.written = serial;
        }
    }
}

/// Opens the database under an already held lock. `Ok(None)`: it does not exist and `create`
/// is false.
fn open_db(at: &Where, create: bool) -> Result<Option<Db>, StateError> {
    let dir = at.dir.as_path();
    let corrupt = |detail: String| at.corrupt(detail);
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(corrupt("it is not a directory".to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if !create {
                return Ok(None);
            }
            create_private_dir_all(dir)?;
        }
        Err(source) => {
            return Err(StateError::Io {
                path: dir.to_path_buf(),
                source,
            })
        }
    }

    let guard_path = dir.join(GUARD_FILE);
    let guard_note = read_guard(&guard_path)?;
    let db = open_sled(at)?;
    let sled_err = |e| at.sled(e);
    let records = db.open_tree(RECORDS_TREE).map_err(sled_err)?;
    let meta = db.open_tree(META_TREE).map_err(sled_err)?;

    if let Some(raw) = meta.get(K_FORMAT).map_err(sled_err)? {
        let found: u32 = at.decode_meta(K_FORMAT, &raw)?;
        if found > STATE_FORMAT_VERSION {
            return Err(StateError::UnsupportedFormat {
                backend: at.backend.clone(),
                address: None,
                found,
                supported: STATE_FORMAT_VERSION,
            });
        }
    }
    let lineage = match meta.get(K_LINEAGE).map_err(sled_err)? {
        Some(raw) => Some(at.decode_meta::<String>(K_LINEAGE, &raw)?),
        None => None,
    };
    let serial = match meta.get(K_SERIAL).map_err(sled_err)? {
        Some(raw) => at.decode_meta::<u64>(K_SERIAL, &raw)?,
        None => 0,
    };

    let lineage = match (lineage, &guard_note) {
        (Some(lineage), Some(note)) => {
            if lineage != note.lineage {
                return Err(corrupt(format!(
                    "its data belongs to lineage {lineage}, but {} says this directory last held \
                     lineage {} (files from another state were copied in?); if that is what you \
                     intended, delete {}",
                    guard_path.display(),
                    note.lineage,
                    guard_path.display()
                )));
            }
            if serial < note.serial {
                return Err(corrupt(format!(
                    "it went back from serial {} to serial {serial}: sled dropped damaged or \
                     truncated data when opening it, so recent changes are lost (a deliberately \
                     restored older backup needs {} deleted)",
                    note.serial,
                    guard_path.display()
                )));
            }
            lineage
        }
        (Some(lineage), None) => lineage,
        (None, Some(note)) => {
            return Err(corrupt(format!(
                "its metadata is gone, though it last held serial {} of lineage {}: sled found \
                 no valid data in its files (truncated or overwritten?)",
                note.serial, note.lineage
            )))
        }
        (None, None) => {
            if !records.is_empty() {
                return Err(corrupt(
                    "it holds records but no lineage (its metadata is lost)".to_string(),
                ));
            }
            // Never initialised (first use, or a crash during creation).
            if !create {
                return Ok(None);
            }
            let lineage = random_hex(16);
            let mut batch = sled::Batch::default();
            batch.insert(K_FORMAT, encode_meta(&STATE_FORMAT_VERSION));
            batch.insert(K_LINEAGE, encode_meta(&lineage));
            batch.insert(K_SERIAL, encode_meta(&0u64));
            batch.insert(K_OUTPUTS, encode_meta(&Map::new()));
            meta.apply_batch(batch).map_err(sled_err)?;
            db.flush().map_err(sled_err)?;
            // sled syncs its files but not the directory entries that name them.
            sync_dir(dir)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
            lineage
        }
    };
    let guard_is_current = guard_note
        .as_ref()
        .is_some_and(|n| n.lineage == lineage && n.serial == serial);

    let io_err = |source| StateError::Io {
        path: guard_path.clone(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&guard_path)
        .map_err(io_err)?;
    if !guard_is_current {
        write_guard(&file, &lineage, serial).map_err(io_err)?;
    }

    Ok(Some(Db {
        db,
        records,
        meta,
        lineage,
        gate: RwLock::new(()),
        guard: Mutex::new(Guard {
            file,
            written: serial,
        }),
    }))
}

/// `sled::open`, made safe against sled's panics on some damaged inputs, and patient with its
/// directory lock (see `SLED_LOCK_GRACE`).
fn open_sled(at: &Where) -> Result<sled::Db, StateError> {
    let deadline = Instant::now() + SLED_LOCK_GRACE;
    loop {
        // We flush on every commit ourselves; sled's periodic flusher would add a thread.
        let config = sled::Config::new().path(&at.dir).flush_every_ms(None);
        match panic::catch_unwind(AssertUnwindSafe(|| config.open())) {
            Ok(Ok(db)) => return Ok(db),
            Ok(Err(sled::Error::Io(e)))
                if e.to_string().contains("could not acquire lock")
                    && Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
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

    fn decode_meta<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        raw: &[u8],
    ) -> Result<T, StateError> {
        serde_json::from_slice(raw)
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
