//! `PgStore`: the PostgreSQL team backend. Many workspaces share one database: every table is
//! keyed by workspace, one row per resource, and every write is one transaction.
//!
//! Schema (version 2; `prov_schema` holds the version, created on first writing use):
//! - `prov_meta(workspace PK, lineage, serial, outputs json)`: one row per workspace;
//! - `prov_resources(workspace, address, format_version, record json)`: the record body, its
//!   format version beside it (record.rs' envelope as two columns);
//! - `prov_pending(workspace, address, op json)`: pending operations;
//! - `prov_history(workspace, address, seq, serial, at, replaced_by, format_version, record)`:
//!   replaced versions, at most `HISTORY_LIMIT` per address;
//! - `prov_locks(workspace PK, holder json, backend_pid)`: who holds the workspace lock;
//! - `prov_versions(workspace, address, serial)` (since 2): the serial of the last commit that
//!   wrote each address's record or pending note (per-resource staleness of saved plans);
//! - `prov_resource_locks(workspace, address, key, holder json, backend_pid)` (since 2): who
//!   holds each resource lock (the lock itself is the advisory lock `key`).
//!
//! `json`, not `jsonb`: it keeps the bytes prov wrote, so key order (outputs and attributes in
//! the order the user wrote them) survives as it does in sled, and records compare byte for
//! byte. The `->`/`->>` operators work on it; cast to jsonb for containment queries.
//!
//! Locks are session-level advisory locks: the server releases them when the session ends for
//! any reason (kill -9, lost network), so they cannot go stale; the rows beside them only name
//! the holders and are overwritten by the next ones. A workspace-scope store holds
//! `pg_lock_key(workspace)` exclusively; a resource-scope store holds it shared (so a
//! workspace-scope one waits for every writer) plus `pg_resource_key(workspace, address)` for
//! each address it writes. Read-only stores hold nothing: each snapshot is one repeatable-read
//! transaction. All writes go through the session that holds the locks and prov never
//! reconnects, so no write can happen without them.
//!
//! Threading: the state API is synchronous. Each store runs tokio-postgres' connection task on
//! its own thread (a current-thread runtime), and callers wait for the client's futures with a
//! minimal `block_on` that parks the calling thread. Those futures only talk to the connection
//! task over channels, so a call works from any thread, including inside another tokio
//! runtime, where a nested `Runtime::block_on` (what the sync `postgres` crate does) panics.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, GenericClient, IsolationLevel, NoTls, Statement};

use crate::dump::push_serial;
use crate::lock::{current_user, hostname, unknown_holder};
use crate::record::{
    decode_all, decode_body, decode_pending, encode_commit, EncodedCommit, RECORD_FORMAT_VERSION,
    REPLACED_BY_DELETE, REPLACED_BY_UPDATE,
};
use crate::util::{now_secs, random_hex};
use crate::{
    BackendErrorKind, Change, ForceUnlock, HistoryEntry, LockInfo, LockScope, OpenOptions,
    ReadOptions, ResourceRecord, Snapshot, StateDump, StateError, StateLock, StateMeta, StateRead,
    StateWrite, HISTORY_LIMIT,
};

/// Version of the PostgreSQL schema described in the module docs.
pub const PG_SCHEMA_VERSION: u32 = 2;

/// `MIGRATIONS[v]` takes the schema from version `v` to `v + 1`; version 0 is "no tables".
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE prov_schema (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version integer NOT NULL
);
CREATE TABLE prov_meta (
    workspace text PRIMARY KEY,
    lineage text NOT NULL,
    serial bigint NOT NULL,
    outputs json NOT NULL
);
CREATE TABLE prov_resources (
    workspace text NOT NULL,
    address text NOT NULL,
    format_version integer NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (workspace, address)
);
CREATE TABLE prov_pending (
    workspace text NOT NULL,
    address text NOT NULL,
    op json NOT NULL,
    PRIMARY KEY (workspace, address)
);
CREATE TABLE prov_history (
    workspace text NOT NULL,
    address text NOT NULL,
    seq bigint NOT NULL,
    serial bigint NOT NULL,
    at bigint NOT NULL,
    replaced_by text NOT NULL,
    format_version integer NOT NULL,
    record json NOT NULL,
    PRIMARY KEY (workspace, address, seq)
);
CREATE TABLE prov_locks (
    workspace text PRIMARY KEY,
    holder json NOT NULL,
    backend_pid integer NOT NULL
);
INSERT INTO prov_schema (version) VALUES (0);
"#,
    r#"
CREATE TABLE prov_versions (
    workspace text NOT NULL,
    address text NOT NULL,
    serial bigint NOT NULL,
    PRIMARY KEY (workspace, address)
);
CREATE TABLE prov_resource_locks (
    workspace text NOT NULL,
    address text NOT NULL,
    key bigint NOT NULL,
    holder json NOT NULL,
    backend_pid integer NOT NULL,
    PRIMARY KEY (workspace, address)
);
"#,
];

/// How often a waiting open retries the lock.
const POLL: Duration = Duration::from_millis(100);
/// How long to re-read a holder row that is missing or stale: the holder writes it just after
/// taking the lock, so a reader can catch the gap.
const NOTE_GRACE: Duration = Duration::from_millis(300);
/// Used when the connection string sets no connect_timeout: long enough for a slow network,
/// short enough that an unreachable server is reported rather than waited on forever. It bounds
/// the TCP connect and the PostgreSQL handshake together, as libpq's does (a port that accepts
/// and never answers included).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest prov waits for the server's next answer in a session (`PROV_PG_STATEMENT_TIMEOUT`
/// overrides it): a server that stops answering is reported instead of waited on forever.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The environment variable that sets [`STATEMENT_TIMEOUT`].
pub const ENV_STATEMENT_TIMEOUT: &str = "PROV_PG_STATEMENT_TIMEOUT";

/// The advisory lock key of `workspace`: FNV-1a (64-bit) of `"prov-state\0" + workspace`. Every
/// prov version must compute the same key, or two of them could hold "the" lock at once; the
/// prefix keeps it apart from keys other applications derive from the same name.
pub fn pg_lock_key(workspace: &str) -> i64 {
    fnv1a(&[b"prov-state\0", workspace.as_bytes()])
}

/// The advisory lock key of one resource of `workspace`: FNV-1a (64-bit) of
/// `"prov-resource\0" + workspace + "\0" + address`, pinned like [`pg_lock_key`].
pub fn pg_resource_key(workspace: &str, address: &str) -> i64 {
    fnv1a(&[
        b"prov-resource\0",
        workspace.as_bytes(),
        b"\0",
        address.as_bytes(),
    ])
}

/// Serialises schema creation and migration between concurrent first uses (transaction-level).
fn schema_lock_key() -> i64 {
    fnv1a(&[b"prov-schema\0"])
}

fn fnv1a(parts: &[&[u8]]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.iter()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

/// A PostgreSQL state for one workspace, locked from open until drop.
pub struct PgStore {
    at: Where,
    workspace: String,
    operation: String,
    /// False: the schema or the workspace does not exist and `create` was false.
    exists: bool,
    /// Opened without the lock ([`OpenOptions::read_only`]): every write is refused.
    read_only: bool,
    scope: LockScope,
    /// The schema version in use (a read-only open also reads an older one).
    schema: u32,
    lock: LockInfo,
    /// Resource scope: the addresses this store locked.
    resources: Mutex<BTreeSet<String>>,
    conn: Mutex<Conn>,
}

/// Which state an error is about, for messages.
/// No password in it: it is only ever built from the parsed host, port, database and user.
#[derive(Clone, Debug)]
struct Where {
    /// "PostgreSQL state at 127.0.0.1:5432/prov (workspace default)"
    backend: String,
    /// "postgresql://127.0.0.1:5432/prov (workspace default)"
    location: String,
    /// "127.0.0.1:5432/prov", for hints.
    server: String,
    user: String,
}

/// One session. Dropping it releases the lock explicitly (so a new open right after sees it
/// free) and closes the session.
struct Conn {
    client: Client,
    guard: Guard,
    key: i64,
    workspace: String,
    locked: bool,
    /// Holds the workspace key shared (resource scope), with resource locks beside it.
    shared: bool,
    stmts: Option<Stmts>,
}

struct Stmts {
    bump: Statement,
    put: Statement,
    delete: Statement,
    put_pending: Statement,
    clear_pending: Statement,
    touch: Statement,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.shared && !self.client.is_closed() {
            // Best effort, as below: the session's end releases them anyway.
            let _ = block_on(
                &self.guard,
                self.client.execute(
                    "DELETE FROM prov_resource_locks WHERE workspace = $1 \
                     AND backend_pid = pg_backend_pid()",
                    &[&self.workspace],
                ),
            );
            let _ = block_on(
                &self.guard,
                self.client.execute("SELECT pg_advisory_unlock_all()", &[]),
            );
        }
        if self.locked && !self.client.is_closed() {
            // Best effort: if the session is gone, the server already dropped the lock (and a
            // session that stopped answering is not waited on again: see `block_on`).
            let _ = block_on(
                &self.guard,
                self.client.execute(
                    "DELETE FROM prov_locks WHERE workspace = $1 AND backend_pid = pg_backend_pid()",
                    &[&self.workspace],
                ),
            );
            let _ = block_on(
                &self.guard,
                self.client
                    .execute("SELECT pg_advisory_unlock($1)", &[&self.key]),
            );
        }
        // Dropping the client ends the connection task and its thread.
    }
}

impl PgStore {
    /// Connects to `conn` (a libpq-style key=value string or a `postgresql://` URL), takes the
    /// workspace lock (waiting up to `opts.lock_timeout`), and with `opts.create` creates the
    /// schema (or migrates an older one) and the workspace. With `create: false` a missing
    /// schema or workspace is an empty state and nothing is written, not even the holder row.
    ///
    /// Without a user in `conn` the OS user is used, and without a password `PGPASSWORD`, as
    /// libpq does. Passwords never appear in errors or `Debug` output.
    ///
    /// Every wait for the server is bounded: connecting (TCP and the handshake) by the
    /// connection string's `connect_timeout` (default 10 s), and each later answer by
    /// `PROV_PG_STATEMENT_TIMEOUT` (default 60 s); a server that stays silent longer is an
    /// error naming it, and the session is abandoned.
    pub fn open(conn: &str, workspace: &str, opts: &OpenOptions) -> Result<PgStore, StateError> {
        Self::open_with(conn, workspace, opts, statement_timeout()?)
    }

    fn open_with(
        conn: &str,
        workspace: &str,
        opts: &OpenOptions,
        statement_timeout: Duration,
    ) -> Result<PgStore, StateError> {
        if workspace.is_empty() || workspace.chars().any(char::is_control) {
            return Err(StateError::InvalidConnection {
                detail: format!(
                    "the workspace name {workspace:?} is empty or has control characters"
                ),
            });
        }
        let (config, at) = parse(conn, workspace)?;
        let mut session = connect(&config, &at, workspace, statement_timeout)?;

        let shared = !opts.read_only && opts.scope == LockScope::Resources;
        let lock = if opts.read_only {
            holder_info(&at, &opts.operation)
        } else {
            acquire(
                &mut session,
                &at,
                &opts.operation,
                opts.lock_timeout,
                shared,
            )?
        };
        let create = opts.create && !opts.read_only;
        let version = ensure_schema(&mut session, &at, create, opts.read_only)?;
        let mut exists = false;
        if version == PG_SCHEMA_VERSION || (opts.read_only && version > 0) {
            exists = ensure_workspace(&mut session, &at, create)?;
            if exists && shared {
                session.stmts = Some(prepare(&mut session, &at)?);
            }
            // A read-only open of a missing workspace writes nothing, not even the holder row.
            if exists && !opts.read_only && !shared {
                let holder = serde_json::to_string(&lock).expect("LockInfo always serialises");
                block_on(
                    &session.guard,
                    session.client.execute(
                        "INSERT INTO prov_locks (workspace, holder, backend_pid) \
                     VALUES ($1, $2::text::json, pg_backend_pid()) \
                     ON CONFLICT (workspace) DO UPDATE \
                     SET holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid",
                        &[&workspace, &holder],
                    ),
                )
                .map_err(|e| at.error(e, "recording the lock holder"))?;
                session.stmts = Some(prepare(&mut session, &at)?);
            }
        }
        Ok(PgStore {
            at,
            workspace: workspace.to_string(),
            operation: opts.operation.clone(),
            exists,
            read_only: opts.read_only,
            scope: if opts.read_only {
                LockScope::Workspace
            } else {
                opts.scope
            },
            schema: version,
            lock,
            resources: Mutex::new(BTreeSet::new()),
            conn: Mutex::new(session),
        })
    }

    pub fn lock_info(&self) -> &LockInfo {
        &self.lock
    }

    /// False when the schema or workspace does not exist (opened with `create: false`).
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// "PostgreSQL state at host:port/db (workspace W)", for messages.
    pub fn backend(&self) -> &str {
        &self.at.backend
    }

    fn session(&self) -> MutexGuard<'_, Conn> {
        // A panic while holding it leaves the session as the server sees it, which is consistent.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn writable(&self) -> Result<MutexGuard<'_, Conn>, StateError> {
        if self.read_only {
            return Err(StateError::ReadOnly {
                backend: self.at.backend.clone(),
                operation: self.operation.clone(),
            });
        }
        if !self.exists {
            return Err(StateError::NotCreated {
                backend: self.at.backend.clone(),
                operation: self.operation.clone(),
            });
        }
        Ok(self.session())
    }

    /// Writes an encoded commit inside `tx` (whose serial row is already bumped).
    async fn apply(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        st: &Stmts,
        commit: &EncodedCommit,
        at: i64,
    ) -> Result<(), tokio_postgres::Error> {
        let ws = &self.workspace;
        let limit = HISTORY_LIMIT as i64;
        let version = RECORD_FORMAT_VERSION as i32;
        for (address, body) in &commit.records {
            match body {
                Some(body) => {
                    let text = std::str::from_utf8(body).expect("serde_json writes UTF-8");
                    tx.execute(&st.put, &[ws, address, &version, &text, &at, &limit])
                        .await?
                }
                None => tx.execute(&st.delete, &[ws, address, &at, &limit]).await?,
            };
        }
        for (address, op) in &commit.pending {
            match op {
                Some(op) => {
                    let text = std::str::from_utf8(op).expect("serde_json writes UTF-8");
                    tx.execute(&st.put_pending, &[ws, address, &text]).await?
                }
                None => tx.execute(&st.clear_pending, &[ws, address]).await?,
            };
        }
        let written: Vec<&String> = commit.addresses().collect();
        if !written.is_empty() {
            tx.execute(&st.touch, &[ws, &written]).await?;
        }
        Ok(())
    }

    /// The error for resources `missed` that others hold: their holder (the first one found
    /// alive; the grace covers a holder that has its locks and is writing its rows) and the
    /// addresses it holds of them.
    fn resources_locked(&self, s: &Conn, missed: Vec<String>) -> StateError {
        let start = Instant::now();
        loop {
            let holders = live_resource_holders(s, Some(&missed)).unwrap_or_default();
            if let Some(holder) = holders.values().next().cloned() {
                let mut holder = holder;
                holder.location = self.at.location.clone();
                let addresses = holders
                    .iter()
                    .filter(|(_, h)| h.id == holder.id)
                    .map(|(a, _)| a.clone())
                    .collect();
                return StateError::ResourcesLocked {
                    holder: Box::new(holder),
                    addresses,
                };
            }
            if start.elapsed() >= NOTE_GRACE {
                return StateError::ResourcesLocked {
                    holder: Box::new(unknown_holder(self.at.location.clone())),
                    addresses: missed,
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Refuses a commit to addresses this store did not lock (resource scope).
    fn check_locked(&self, commit: &EncodedCommit) -> Result<(), StateError> {
        if self.scope == LockScope::Workspace {
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
}

impl StateLock for PgStore {
    fn lock_info(&self) -> &LockInfo {
        &self.lock
    }
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("backend", &self.at.backend)
            .field("exists", &self.exists)
            .field("lock", &self.lock)
            .finish()
    }
}

impl StateRead for PgStore {
    fn snapshot_with(&self, opts: ReadOptions) -> Result<Snapshot, StateError> {
        if !self.exists {
            return Ok(Snapshot::default());
        }
        let mut s = self.session();
        let ws = &self.workspace;
        // One repeatable-read transaction: meta, records and pending of the same commit.
        let guard = s.guard.clone();
        let (meta, records, pending) = block_on(&guard, async {
            let tx = s
                .client
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let meta = tx
                .query_opt(
                    "SELECT lineage, serial, outputs::text FROM prov_meta WHERE workspace = $1",
                    &[ws],
                )
                .await?;
            let records = tx
                .query(
                    "SELECT address, format_version, record::text FROM prov_resources \
                     WHERE workspace = $1 ORDER BY address COLLATE \"C\"",
                    &[ws],
                )
                .await?;
            let pending = tx
                .query(
                    "SELECT address, op::text FROM prov_pending WHERE workspace = $1",
                    &[ws],
                )
                .await?;
            tx.commit().await?;
            Ok((meta, records, pending))
        })
        .map_err(|e| self.at.error(e, "reading the state"))?;
        drop(s);
        let Some(meta) = meta else {
            return Err(self.at.workspace_gone());
        };
        let outputs: String = meta.get(2);
        let outputs: Map<String, Value> = crate::depth::from_slice_deep(outputs.as_bytes())
            .map_err(|e| {
                self.at
                    .corrupt(None, format!("its outputs do not decode ({e})"))
            })?;
        let raw: Vec<(String, i32, String)> = records
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let backend = self.at.backend.as_str();
        let resources = decode_all(raw, opts, |(a, v, body)| {
            let mut r = decode_body(backend, a, version_of(backend, a, *v)?, body.as_bytes())?;
            if opts.without_configs {
                r.config = Value::Null;
            }
            Ok(r)
        })?;
        let pending = pending
            .iter()
            .map(|r| {
                let (a, op): (String, String) = (r.get(0), r.get(1));
                let op = decode_pending(backend, &a, op.as_bytes())?;
                Ok((a, op))
            })
            .collect::<Result<_, StateError>>()?;
        Ok(Snapshot {
            meta: StateMeta {
                lineage: meta.get(0),
                serial: serial_of(meta.get(1)),
            },
            resources,
            outputs,
            pending,
        })
    }

    fn meta(&self) -> Result<StateMeta, StateError> {
        if !self.exists {
            return Ok(StateMeta::default());
        }
        let s = self.session();
        let row = block_on(
            &s.guard,
            s.client.query_opt(
                "SELECT lineage, serial FROM prov_meta WHERE workspace = $1",
                &[&self.workspace],
            ),
        )
        .map_err(|e| self.at.error(e, "reading the state"))?
        .ok_or_else(|| self.at.workspace_gone())?;
        Ok(StateMeta {
            lineage: row.get(0),
            serial: serial_of(row.get(1)),
        })
    }

    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError> {
        if !self.exists {
            return Ok(None);
        }
        let s = self.session();
        let row = block_on(
            &s.guard,
            s.client.query_opt(
                "SELECT format_version, record::text FROM prov_resources \
             WHERE workspace = $1 AND address = $2",
                &[&self.workspace, &address],
            ),
        )
        .map_err(|e| self.at.error(e, "reading a record"))?;
        let Some(row) = row else { return Ok(None) };
        let backend = &self.at.backend;
        let body: String = row.get(1);
        decode_body(
            backend,
            address,
            version_of(backend, address, row.get(0))?,
            body.as_bytes(),
        )
        .map(Some)
    }

    fn history(&self, address: &str) -> Result<Vec<HistoryEntry>, StateError> {
        if !self.exists {
            return Ok(Vec::new());
        }
        let s = self.session();
        let rows = block_on(
            &s.guard,
            s.client.query(
                "SELECT serial, at, replaced_by, format_version, record::text FROM prov_history \
             WHERE workspace = $1 AND address = $2 ORDER BY seq DESC",
                &[&self.workspace, &address],
            ),
        )
        .map_err(|e| self.at.error(e, "reading history"))?;
        let backend = &self.at.backend;
        rows.iter()
            .map(|r| {
                let replaced_by: String = r.get(2);
                if replaced_by != REPLACED_BY_UPDATE && replaced_by != REPLACED_BY_DELETE {
                    return Err(self.at.corrupt(
                        Some(address),
                        format!("a history entry says it was replaced by \"{replaced_by}\""),
                    ));
                }
                let body: String = r.get(4);
                Ok(HistoryEntry {
                    serial: serial_of(r.get(0)),
                    at: serial_of(r.get(1)),
                    replaced_by,
                    record: decode_body(
                        backend,
                        address,
                        version_of(backend, address, r.get(3))?,
                        body.as_bytes(),
                    )?,
                })
            })
            .collect()
    }

    fn changed_since(
        &self,
        addresses: &BTreeSet<String>,
        serial: u64,
    ) -> Result<BTreeSet<String>, StateError> {
        if !self.exists || self.schema < 2 || addresses.is_empty() {
            return Ok(BTreeSet::new());
        }
        let s = self.session();
        let wanted: Vec<&String> = addresses.iter().collect();
        let rows = block_on(
            &s.guard,
            s.client.query(
                "SELECT address FROM prov_versions WHERE workspace = $1 \
                 AND address = ANY($2) AND serial > $3 \
                 UNION ALL SELECT '' FROM prov_versions WHERE workspace = $1 \
                 AND address = '' AND serial > $3",
                &[&self.workspace, &wanted, &(serial as i64)],
            ),
        )
        .map_err(|e| self.at.error(e, "reading what changed"))?;
        let changed: BTreeSet<String> = rows.iter().map(|r| r.get(0)).collect();
        if changed.contains("") {
            // Made before this state tracked serials per address.
            return Ok(addresses.clone());
        }
        Ok(changed)
    }

    fn resource_locks(&self) -> Result<BTreeMap<String, LockInfo>, StateError> {
        if !self.exists || self.schema < 2 {
            return Ok(BTreeMap::new());
        }
        let s = self.session();
        let mut held = live_resource_holders(&s, None)
            .map_err(|e| self.at.error(e, "reading the resource locks"))?;
        for h in held.values_mut() {
            h.location = self.at.location.clone();
        }
        Ok(held)
    }
}

impl StateWrite for PgStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = encode_commit(changes)?;
        self.check_locked(&encoded)?;
        let mut s = self.writable()?;
        let at = now_secs() as i64;
        let s = &mut *s;
        let st = s.stmts.as_ref().expect("prepared when the state exists");
        let guard = s.guard.clone();
        block_on(&guard, async {
            let tx = s.client.transaction().await?;
            // The serial first: history rows of this commit read it back.
            let serial: i64 = tx.query_one(&st.bump, &[&self.workspace]).await?.get(0);
            self.apply(&tx, st, &encoded, at).await?;
            tx.commit().await?;
            Ok(serial)
        })
        .map(serial_of)
        .map_err(|e| self.at.error(e, "committing"))
    }

    fn set_outputs(&self, outputs: Map<String, Value>) -> Result<u64, StateError> {
        crate::depth::check_outputs(&outputs)?;
        let text = serde_json::to_string(&outputs).expect("outputs always serialise");
        let s = self.writable()?;
        // One statement: atomic on its own.
        let row = block_on(
            &s.guard,
            s.client.query_opt(
                "UPDATE prov_meta SET outputs = $2::text::json, serial = serial + 1 \
             WHERE workspace = $1 RETURNING serial",
                &[&self.workspace, &text],
            ),
        )
        .map_err(|e| self.at.error(e, "writing outputs"))?;
        row.map(|r| serial_of(r.get(0)))
            .ok_or_else(|| self.at.workspace_gone())
    }

    fn replace_all(&self, dump: &StateDump, force: bool) -> Result<u64, StateError> {
        let mut commit = crate::record::encode_dump(dump)?;
        let outputs = serde_json::to_string(&dump.outputs).expect("outputs always serialise");
        let mut s = self.writable()?;
        let s = &mut *s;
        let st = s.stmts.as_ref().expect("prepared when the state exists");
        let ws = &self.workspace;
        let at = now_secs() as i64;
        // Outer error: the refusal (nothing written, transaction rolled back on drop).
        let guard = s.guard.clone();
        let res: Result<Result<u64, StateError>, PgFail> = block_on(&guard, async {
            let tx = s.client.transaction().await?;
            let Some(row) = tx
                .query_opt(
                    "SELECT lineage, serial, outputs::text, \
                     EXISTS (SELECT 1 FROM prov_resources WHERE workspace = $1) \
                     OR EXISTS (SELECT 1 FROM prov_pending WHERE workspace = $1) \
                     FROM prov_meta WHERE workspace = $1 FOR UPDATE",
                    &[ws],
                )
                .await?
            else {
                return Ok(Err(self.at.workspace_gone()));
            };
            let ours = StateMeta {
                lineage: row.get(0),
                serial: serial_of(row.get(1)),
            };
            let outputs_empty = row.get::<_, String>(2).trim() == "{}";
            let empty = outputs_empty && !row.get::<_, bool>(3);
            let serial = match push_serial(&ours, empty, dump, force, "the pushed state") {
                Ok(serial) => serial,
                Err(e) => return Ok(Err(e)),
            };
            tx.execute(
                "UPDATE prov_meta SET serial = $2, lineage = $3, outputs = $4::text::json \
                 WHERE workspace = $1",
                &[ws, &(serial as i64), &dump.lineage, &outputs],
            )
            .await?;
            let current = tx
                .query(
                    "SELECT address FROM prov_resources WHERE workspace = $1",
                    &[ws],
                )
                .await?;
            for row in current {
                commit.records.entry(row.get(0)).or_insert(None);
            }
            tx.execute("DELETE FROM prov_pending WHERE workspace = $1", &[ws])
                .await?;
            self.apply(&tx, st, &commit, at).await?;
            tx.commit().await?;
            Ok(Ok(serial))
        });
        res.map_err(|e| self.at.error(e, "replacing the state"))?
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
        if self.scope == LockScope::Workspace {
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
        let keys: Vec<i64> = wanted
            .iter()
            .map(|a| pg_resource_key(&self.workspace, a))
            .collect();
        let holder = serde_json::to_string(&self.lock).expect("LockInfo always serialises");
        let s = self.writable()?;
        let deadline = Instant::now() + timeout;
        loop {
            // Each key tried once; on any miss, those taken are given back (all or nothing, so
            // two writers waiting for each other's resources cannot deadlock).
            let got: Vec<bool> = block_on(
                &s.guard,
                s.client.query(
                    "SELECT pg_try_advisory_lock(k) FROM unnest($1::bigint[]) WITH ORDINALITY \
                     AS t(k, i) ORDER BY i",
                    &[&keys],
                ),
            )
            .map_err(|e| self.at.error(e, "taking resource locks"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
            if got.iter().all(|g| *g) {
                block_on(
                    &s.guard,
                    s.client.execute(
                        "INSERT INTO prov_resource_locks (workspace, address, key, holder, \
                         backend_pid) SELECT $1, a, k, $4::text::json, pg_backend_pid() \
                         FROM unnest($2::text[], $3::bigint[]) AS t(a, k) \
                         ON CONFLICT (workspace, address) DO UPDATE SET key = EXCLUDED.key, \
                         holder = EXCLUDED.holder, backend_pid = EXCLUDED.backend_pid",
                        &[&self.workspace, &wanted, &keys, &holder],
                    ),
                )
                .map_err(|e| self.at.error(e, "recording resource lock holders"))?;
                self.resources
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(wanted);
                return Ok(());
            }
            let taken: Vec<i64> = keys
                .iter()
                .zip(&got)
                .filter(|(_, g)| **g)
                .map(|(k, _)| *k)
                .collect();
            let missed: Vec<String> = wanted
                .iter()
                .zip(&got)
                .filter(|(_, g)| !**g)
                .map(|(a, _)| a.clone())
                .collect();
            if !taken.is_empty() {
                block_on(
                    &s.guard,
                    s.client.execute(
                        "SELECT pg_advisory_unlock(k) FROM unnest($1::bigint[]) k",
                        &[&taken],
                    ),
                )
                .map_err(|e| self.at.error(e, "giving back resource locks"))?;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(self.resources_locked(&s, missed));
            }
            std::thread::sleep(POLL.min(deadline - now));
        }
    }

    fn update_outputs(
        &self,
        compute: &mut dyn FnMut(&Snapshot) -> Map<String, Value>,
    ) -> Result<u64, StateError> {
        let mut s = self.writable()?;
        let s = &mut *s;
        let ws = &self.workspace;
        let guard = s.guard.clone();
        let backend = self.at.backend.clone();
        // Outer error: the server's; inner: decoding or a refused value (rolled back on drop).
        let res: Result<Result<u64, StateError>, PgFail> = block_on(&guard, async {
            let tx = s.client.transaction().await?;
            // Every commit updates this row first, so holding it keeps them all out until ours
            // is done: the records read below are the ones the outputs are written beside.
            let Some(meta) = tx
                .query_opt(
                    "SELECT lineage, serial, outputs::text FROM prov_meta WHERE workspace = $1 \
                     FOR UPDATE",
                    &[ws],
                )
                .await?
            else {
                return Ok(Err(self.at.workspace_gone()));
            };
            let rows = tx
                .query(
                    "SELECT address, format_version, record::text FROM prov_resources \
                     WHERE workspace = $1",
                    &[ws],
                )
                .await?;
            let mut resources = BTreeMap::new();
            for r in &rows {
                let (a, v, body): (String, i32, String) = (r.get(0), r.get(1), r.get(2));
                let version = match version_of(&backend, &a, v) {
                    Ok(v) => v,
                    Err(e) => return Ok(Err(e)),
                };
                match decode_body(&backend, &a, version, body.as_bytes()) {
                    Ok(mut rec) => {
                        rec.config = Value::Null;
                        resources.insert(a, rec);
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
            let snap = Snapshot {
                meta: StateMeta {
                    lineage: meta.get(0),
                    serial: serial_of(meta.get(1)),
                },
                resources,
                outputs: crate::depth::from_slice_deep(meta.get::<_, String>(2).as_bytes())
                    .unwrap_or_default(),
                pending: BTreeMap::new(),
            };
            let outputs = compute(&snap);
            if let Err(e) = crate::depth::check_outputs(&outputs) {
                return Ok(Err(e));
            }
            let text = serde_json::to_string(&outputs).expect("outputs always serialise");
            let serial: i64 = tx
                .query_one(
                    "UPDATE prov_meta SET outputs = $2::text::json, serial = serial + 1 \
                     WHERE workspace = $1 RETURNING serial",
                    &[ws, &text],
                )
                .await?
                .get(0);
            tx.commit().await?;
            Ok(Ok(serial_of(serial)))
        });
        res.map_err(|e| self.at.error(e, "writing outputs"))?
    }
}

/// Parses the connection string, filling libpq's defaults, and names the state for messages.
fn parse(conn: &str, workspace: &str) -> Result<(Config, Where), StateError> {
    let mut config: Config = conn.parse().map_err(|e: tokio_postgres::Error| {
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        StateError::InvalidConnection {
            detail: format!("{} ({e}{cause})", redact_conn(conn)),
        }
    })?;
    if config.get_hosts().is_empty() && config.get_hostaddrs().is_empty() {
        return Err(StateError::InvalidConnection {
            detail: format!("{} names no host", redact_conn(conn)),
        });
    }
    if config.get_user().is_none() {
        config.user(current_user());
    }
    if config.get_password().is_none() {
        if let Some(p) = std::env::var_os("PGPASSWORD") {
            config.password(p.as_encoded_bytes());
        }
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        // Lets a DBA tell prov's sessions (and so its locks) apart in pg_stat_activity.
        config.application_name("prov");
    }
    let host = match (config.get_hosts().first(), config.get_hostaddrs().first()) {
        (Some(tokio_postgres::config::Host::Tcp(h)), _) => h.clone(),
        (Some(tokio_postgres::config::Host::Unix(p)), _) => p.display().to_string(),
        (None, Some(addr)) => addr.to_string(),
        (None, None) => unreachable!("checked above"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or_default().to_string();
    let db = config.get_dbname().unwrap_or(&user).to_string();
    let server = format!("{host}:{port}/{db}");
    Ok((
        config,
        Where {
            backend: format!("PostgreSQL state at {server} (workspace {workspace})"),
            location: format!("postgresql://{server} (workspace {workspace})"),
            server,
            user,
        },
    ))
}

enum Failed {
    Connect(tokio_postgres::Error),
    /// No handshake within the connect timeout.
    Silent(Duration),
    Runtime(std::io::Error),
}

/// Connects, running the connection task on a thread of its own (see module docs).
fn connect(
    config: &Config,
    at: &Where,
    workspace: &str,
    statement_timeout: Duration,
) -> Result<Conn, StateError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let config = config.clone();
    // tokio-postgres applies connect_timeout to the TCP connect only; libpq (and users) mean
    // the whole connection, handshake and authentication included.
    let handshake = config
        .get_connect_timeout()
        .copied()
        .unwrap_or(CONNECT_TIMEOUT);
    std::thread::Builder::new()
        .name("prov-pg".to_string())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = tx.send(Err(Failed::Runtime(e)));
                    return;
                }
            };
            rt.block_on(async move {
                match tokio::time::timeout(handshake, config.connect(NoTls)).await {
                    Err(_) => {
                        let _ = tx.send(Err(Failed::Silent(handshake)));
                    }
                    Ok(Ok((client, connection))) => {
                        let _ = tx.send(Ok(client));
                        // Runs until the client is dropped or the server closes the session.
                        let _ = connection.await;
                    }
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(Failed::Connect(e)));
                    }
                }
            });
        })
        .map_err(|e| {
            at.backend_error(
                BackendErrorKind::Other,
                format!("cannot start a thread: {e}"),
                "retry",
            )
        })?;
    match rx.recv() {
        Ok(Ok(client)) => Ok(Conn {
            client,
            guard: Guard {
                limit: statement_timeout,
                stalled: Arc::new(AtomicBool::new(false)),
            },
            key: pg_lock_key(workspace),
            workspace: workspace.to_string(),
            locked: false,
            shared: false,
            stmts: None,
        }),
        Ok(Err(Failed::Connect(e))) => Err(at.connect_error(e)),
        Ok(Err(Failed::Silent(limit))) => Err(at.backend_error(
            BackendErrorKind::Unreachable,
            format!(
                "cannot connect: no PostgreSQL handshake within {} (connect_timeout)",
                show_duration(limit)
            ),
            &format!(
                "check that {} is a PostgreSQL server that answers (host and port in the \
                 connection string, PROV_PG_CONN or the workspace's backend.conn), or raise \
                 connect_timeout=SECONDS in the connection string for a slow network; nothing \
                 was written",
                at.server
            ),
        )),
        Ok(Err(Failed::Runtime(e))) => Err(at.backend_error(
            BackendErrorKind::Other,
            format!("cannot start the client runtime: {e}"),
            "retry",
        )),
        Err(_) => Err(at.backend_error(
            BackendErrorKind::Other,
            "the connection thread ended unexpectedly".to_string(),
            "retry",
        )),
    }
}

/// Takes the workspace's advisory lock (`shared`: as a resource-scope writer), retrying every
/// `POLL` until `timeout`.
fn acquire(
    s: &mut Conn,
    at: &Where,
    operation: &str,
    timeout: Duration,
    shared: bool,
) -> Result<LockInfo, StateError> {
    let deadline = Instant::now() + timeout;
    let take = if shared {
        "SELECT pg_try_advisory_lock_shared($1)"
    } else {
        "SELECT pg_try_advisory_lock($1)"
    };
    loop {
        let got: bool = block_on(&s.guard, s.client.query_one(take, &[&s.key]))
            .map_err(|e| at.error(e, "taking the state lock"))?
            .get(0);
        if got {
            if shared {
                s.shared = true;
            } else {
                s.locked = true;
            }
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(StateError::Locked {
                holder: Box::new(read_holder(s, at)),
            });
        }
        std::thread::sleep(POLL.min(deadline - now));
    }
    Ok(holder_info(at, operation))
}

/// Who this process is, as a lock holder (also for a read-only open, which holds no lock).
fn holder_info(at: &Where, operation: &str) -> LockInfo {
    LockInfo {
        id: random_hex(8),
        user: current_user(),
        host: hostname(),
        pid: std::process::id(),
        operation: operation.to_string(),
        since: now_secs(),
        location: at.location.clone(),
    }
}

/// The live holder of the workspace lock as its row names it, or an unknown holder when there is
/// no row, the row is left over from a session that ended, or the table does not exist.
fn read_holder(s: &Conn, at: &Where) -> LockInfo {
    let start = Instant::now();
    loop {
        if let Ok(Some(holder)) = live_holder(s) {
            let mut holder = holder.0;
            holder.location = at.location.clone();
            return holder;
        }
        // Resource-scope writers hold the workspace key shared and name themselves per address.
        if let Ok(Some(mut holder)) = live_resource_holders(s, None).map(|h| h.into_values().next())
        {
            holder.location = at.location.clone();
            return holder;
        }
        if start.elapsed() >= NOTE_GRACE {
            return unknown_holder(at.location.clone());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The holder row and its session's backend pid, if that session holds the lock now.
fn live_holder(s: &Conn) -> Result<Option<(LockInfo, i32)>, PgFail> {
    let row = block_on(
        &s.guard,
        s.client.query_opt(
            "SELECT l.holder::text, l.backend_pid FROM prov_locks l \
         WHERE l.workspace = $1 AND l.backend_pid = \
         (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
          AND ((classid::bigint << 32) | objid::bigint) = $2 LIMIT 1)",
            &[&s.workspace, &s.key],
        ),
    )?;
    Ok(row.and_then(|r| {
        let holder: String = r.get(0);
        serde_json::from_str::<LockInfo>(&holder)
            .ok()
            .map(|h| (h, r.get(1)))
    }))
}

/// Live resource lock holders other than this session, by address (of `only`, when given). A
/// table that does not exist yet holds none.
fn live_resource_holders(
    s: &Conn,
    only: Option<&[String]>,
) -> Result<BTreeMap<String, LockInfo>, PgFail> {
    let all: Vec<String> = Vec::new();
    let rows = block_on(
        &s.guard,
        s.client.query(
            "SELECT r.address, r.holder::text FROM prov_resource_locks r \
             WHERE r.workspace = $1 AND ($2 OR r.address = ANY($3)) \
             AND r.backend_pid <> pg_backend_pid() AND EXISTS ( \
               SELECT 1 FROM pg_locks l WHERE l.locktype = 'advisory' AND l.granted \
               AND l.objsubid = 1 AND l.pid = r.backend_pid \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND ((l.classid::bigint << 32) | l.objid::bigint) = r.key)",
            &[&s.workspace, &only.is_none(), &only.unwrap_or(&all)],
        ),
    );
    let rows = match rows {
        Ok(rows) => rows,
        // No table yet (an older schema), or a reader granted SELECT before the table existed:
        // no holders known (a plan then treats running steps' notes as it did before locks).
        Err(PgFail::Client(e))
            if e.code() == Some(&SqlState::UNDEFINED_TABLE)
                || e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    Ok(rows
        .iter()
        .filter_map(|r| {
            let holder: String = r.get(1);
            serde_json::from_str::<LockInfo>(&holder)
                .ok()
                .map(|h| (r.get::<_, String>(0), h))
        })
        .collect())
}

/// Returns the schema version in use after creating or migrating it as allowed; 0 means no
/// schema (only with `create: false`).
fn ensure_schema(
    s: &mut Conn,
    at: &Where,
    create: bool,
    read_only: bool,
) -> Result<u32, StateError> {
    let version = schema_version(s, at)?;
    if version > PG_SCHEMA_VERSION {
        return Err(StateError::UnsupportedFormat {
            backend: at.backend.clone(),
            address: None,
            found: version,
            supported: PG_SCHEMA_VERSION,
        });
    }
    // A read-only open reads an older schema as it is (later versions only add tables).
    if version == PG_SCHEMA_VERSION || (!create && (version == 0 || read_only)) {
        return Ok(version);
    }
    if !create {
        return Err(at.backend_error(
            BackendErrorKind::Other,
            format!(
                "its schema is at version {version}, older than this prov's {PG_SCHEMA_VERSION}, \
                 and this command does not write"
            ),
            "run a command that writes the state (apply, refresh) once to upgrade the schema",
        ));
    }
    let key = schema_lock_key();
    let guard = s.guard.clone();
    let res = block_on(&guard, async {
        let tx = s.client.transaction().await?;
        // Concurrent first uses wait here; the loser finds the schema made and does nothing.
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key])
            .await?;
        // Damage is reported as a newer version would be: refuse rather than rebuild.
        let mut version = read_version(&tx).await?.unwrap_or(u32::MAX);
        if version > PG_SCHEMA_VERSION {
            return Ok(version);
        }
        while version < PG_SCHEMA_VERSION {
            tx.batch_execute(MIGRATIONS[version as usize]).await?;
            version += 1;
        }
        tx.execute(
            "UPDATE prov_schema SET version = $1",
            &[&(PG_SCHEMA_VERSION as i32)],
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    });
    let version = res.map_err(|e| at.error(e, "creating prov's tables"))?;
    if version > PG_SCHEMA_VERSION {
        return Err(StateError::UnsupportedFormat {
            backend: at.backend.clone(),
            address: None,
            found: version,
            supported: PG_SCHEMA_VERSION,
        });
    }
    Ok(version)
}

fn schema_version(s: &Conn, at: &Where) -> Result<u32, StateError> {
    block_on(&s.guard, read_version(&s.client))
        .map_err(|e| at.error(e, "reading the schema version"))?
        .ok_or_else(|| at.corrupt(None, "prov_schema holds no valid version".to_string()))
}

/// The schema version (0: no prov tables), or `None` when `prov_schema` holds no valid one.
async fn read_version(c: &impl GenericClient) -> Result<Option<u32>, tokio_postgres::Error> {
    // pg_class itself, not to_regclass(): the catalog cache behind the latter can miss a table
    // that a concurrent first use committed while this one waited for the schema lock.
    let exists: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = 'prov_schema' AND n.nspname = current_schema())",
            &[],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(Some(0));
    }
    let row = c.query_opt("SELECT version FROM prov_schema", &[]).await?;
    Ok(row.and_then(|r| u32::try_from(r.get::<_, i32>(0)).ok()))
}

/// Makes sure the workspace row exists (with `create`); false when it does not.
fn ensure_workspace(s: &mut Conn, at: &Where, create: bool) -> Result<bool, StateError> {
    let ws = s.workspace.clone();
    let found = block_on(
        &s.guard,
        s.client
            .query_opt("SELECT 1 FROM prov_meta WHERE workspace = $1", &[&ws]),
    )
    .map_err(|e| at.error(e, "reading the workspace"))?;
    if found.is_some() {
        return Ok(true);
    }
    if !create {
        return Ok(false);
    }
    // Under the workspace lock nobody else creates it; the conflict clause is belt and braces.
    block_on(
        &s.guard,
        s.client.execute(
            "INSERT INTO prov_meta (workspace, lineage, serial, outputs) VALUES ($1, $2, 0, '{}') \
         ON CONFLICT (workspace) DO NOTHING",
            &[&ws, &random_hex(16)],
        ),
    )
    .map_err(|e| at.error(e, "creating the workspace"))?;
    Ok(true)
}

fn prepare(s: &mut Conn, at: &Where) -> Result<Stmts, StateError> {
    let c = &s.client;
    block_on(&s.guard, async {
        Ok(Stmts {
            bump: c
                .prepare(
                    "UPDATE prov_meta SET serial = serial + 1 WHERE workspace = $1 \
                     RETURNING serial",
                )
                .await?,
            // Keeps the replaced version (unless identical) and trims history to the limit, in
            // the same statement as the upsert: O(1) rows touched, index lookups only.
            put: c
                .prepare(
                    "WITH old AS ( \
                       SELECT format_version, record FROM prov_resources \
                       WHERE workspace = $1 AND address = $2 \
                     ), kept AS ( \
                       INSERT INTO prov_history \
                         (workspace, address, seq, serial, at, replaced_by, format_version, record) \
                       SELECT $1, $2, \
                         COALESCE((SELECT max(seq) FROM prov_history \
                                   WHERE workspace = $1 AND address = $2), 0) + 1, \
                         (SELECT serial FROM prov_meta WHERE workspace = $1), $5, 'update', \
                         old.format_version, old.record \
                       FROM old WHERE old.format_version <> $3 OR old.record::text <> $4::text \
                       RETURNING seq \
                     ), trimmed AS ( \
                       DELETE FROM prov_history WHERE workspace = $1 AND address = $2 \
                       AND seq <= (SELECT seq FROM kept) - $6::bigint \
                     ) \
                     INSERT INTO prov_resources (workspace, address, format_version, record) \
                     VALUES ($1, $2, $3, $4::text::json) \
                     ON CONFLICT (workspace, address) DO UPDATE \
                     SET format_version = EXCLUDED.format_version, record = EXCLUDED.record",
                )
                .await?,
            delete: c
                .prepare(
                    "WITH old AS ( \
                       DELETE FROM prov_resources WHERE workspace = $1 AND address = $2 \
                       RETURNING format_version, record \
                     ), kept AS ( \
                       INSERT INTO prov_history \
                         (workspace, address, seq, serial, at, replaced_by, format_version, record) \
                       SELECT $1, $2, \
                         COALESCE((SELECT max(seq) FROM prov_history \
                                   WHERE workspace = $1 AND address = $2), 0) + 1, \
                         (SELECT serial FROM prov_meta WHERE workspace = $1), $3, 'delete', \
                         old.format_version, old.record \
                       FROM old RETURNING seq \
                     ) \
                     DELETE FROM prov_history WHERE workspace = $1 AND address = $2 \
                     AND seq <= (SELECT seq FROM kept) - $4::bigint",
                )
                .await?,
            put_pending: c
                .prepare(
                    "INSERT INTO prov_pending (workspace, address, op) \
                     VALUES ($1, $2, $3::text::json) \
                     ON CONFLICT (workspace, address) DO UPDATE SET op = EXCLUDED.op",
                )
                .await?,
            clear_pending: c
                .prepare("DELETE FROM prov_pending WHERE workspace = $1 AND address = $2")
                .await?,
            touch: c
                .prepare(
                    "INSERT INTO prov_versions (workspace, address, serial) \
                     SELECT $1, a, (SELECT serial FROM prov_meta WHERE workspace = $1) \
                     FROM unnest($2::text[]) a \
                     ON CONFLICT (workspace, address) DO UPDATE SET serial = EXCLUDED.serial",
                )
                .await?,
        })
    })
    .map_err(|e| at.error(e, "preparing statements"))
}

/// `prov force-unlock LOCK_ID` for a PostgreSQL state. The lock dies with its session, so only
/// the holder row can be left behind (by a prov that was killed); this clears that row when the
/// lock is free and the id matches, refuses another id (`LockIdMismatch`), and for a lock a live
/// session holds returns `LockHeld` naming the holder and its server session.
pub fn force_unlock_pg(
    conn: &str,
    workspace: &str,
    lock_id: &str,
) -> Result<ForceUnlock, StateError> {
    let (config, at) = parse(conn, workspace)?;
    let mut s = connect(&config, &at, workspace, statement_timeout()?)?;
    let mismatch = |holder: Option<LockInfo>| StateError::LockIdMismatch {
        location: at.location.clone(),
        given: lock_id.to_string(),
        holder: holder.map(Box::new),
    };
    let row = block_on(
        &s.guard,
        s.client.query_opt(
            "SELECT holder::text, backend_pid FROM prov_locks WHERE workspace = $1",
            &[&s.workspace],
        ),
    );
    let row = match row {
        Ok(row) => row,
        // No table: nothing was ever locked with a holder here.
        Err(PgFail::Client(e)) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => None,
        Err(e) => return Err(at.error(e, "reading the lock holder")),
    };
    let Some(row) = row else {
        return Err(mismatch(None));
    };
    let holder: Option<LockInfo> = serde_json::from_str(&row.get::<_, String>(0)).ok();
    let mut holder = match holder {
        Some(h) if h.id == lock_id && !lock_id.is_empty() => h,
        other => return Err(mismatch(other)),
    };
    holder.location = at.location.clone();
    let got: bool = block_on(
        &s.guard,
        s.client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&s.key]),
    )
    .map_err(|e| at.error(e, "testing the state lock"))?
    .get(0);
    if got {
        s.locked = true;
        block_on(
            &s.guard,
            s.client.execute(
                "DELETE FROM prov_locks WHERE workspace = $1",
                &[&s.workspace],
            ),
        )
        .map_err(|e| at.error(e, "clearing the lock holder"))?;
        // Conn's drop releases the lock.
        return Ok(ForceUnlock::StaleNoteCleared(holder));
    }
    let detail = match live_holder(&s) {
        Ok(Some((_, backend))) => format!(
            "prov pid {} on {} ({}, operation \"{}\", since {}) holds it through server session \
             {backend}; a database administrator can end that session with \
             SELECT pg_terminate_backend({backend})",
            holder.pid,
            holder.host,
            holder.user,
            holder.operation,
            crate::format_utc(holder.since)
        ),
        _ => "a session other than the one the holder row names holds it".to_string(),
    };
    Err(StateError::LockHeld {
        holder: Box::new(holder),
        detail,
    })
}

/// `conn` with any password replaced by `***`: the `password=` key (quoted or not) of the
/// key=value form, the `user:password@` part of a URL, and a `password=` URL query parameter.
pub fn redact_conn(conn: &str) -> String {
    let mut out = conn.to_string();
    // URL userinfo: between "://" and the last '@' before the path.
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                out.replace_range(rest_start + colon + 1..rest_start + at, "***");
            }
        }
    }
    // `password=value` anywhere (key=value form, URL query).
    let mut result = String::with_capacity(out.len());
    let mut rest = out.as_str();
    loop {
        let lower = rest.to_ascii_lowercase();
        let Some(pos) = lower.find("password") else {
            result.push_str(rest);
            break;
        };
        let after_key = &rest[pos + "password".len()..];
        let trimmed = after_key.trim_start();
        // Only the key itself counts: preceded by a separator, followed by '='.
        let boundary =
            pos == 0 || matches!(rest.as_bytes()[pos - 1], b' ' | b'\t' | b'\n' | b'?' | b'&');
        if !boundary || !trimmed.starts_with('=') {
            result.push_str(&rest[..pos + "password".len()]);
            rest = after_key;
            continue;
        }
        result.push_str(&rest[..pos]);
        result.push_str("password=***");
        let value = trimmed[1..].trim_start();
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            // Quoted value with backslash escapes, up to the closing quote.
            let mut escaped = false;
            let mut end = quoted.len();
            for (i, c) in quoted.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '\'' if !escaped => {
                        end = i + 1;
                        break;
                    }
                    _ => escaped = false,
                }
            }
            1 + end
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value.len())
        };
        rest = &value[value_len..];
    }
    result
}

impl Where {
    fn backend_error(
        &self,
        kind: BackendErrorKind,
        detail: String,
        what_to_do: &str,
    ) -> StateError {
        StateError::Backend {
            backend: self.backend.clone(),
            kind,
            detail,
            what_to_do: what_to_do.to_string(),
        }
    }

    fn corrupt(&self, address: Option<&str>, detail: String) -> StateError {
        StateError::Corrupt {
            backend: self.backend.clone(),
            address: address.map(str::to_string),
            detail,
            what_to_do: "restore the database (or this workspace's rows) from a backup; prov \
                         wrote nothing because of this error"
                .to_string(),
        }
    }

    fn workspace_gone(&self) -> StateError {
        self.corrupt(
            None,
            "its row in prov_meta disappeared while prov was using it (deleted by hand?)"
                .to_string(),
        )
    }

    /// An error while connecting: no server, refused credentials, missing database.
    fn connect_error(&self, e: tokio_postgres::Error) -> StateError {
        if e.as_db_error().is_some() {
            return self.error(e, "connecting");
        }
        let cause = std::error::Error::source(&e)
            .map(|c| format!(": {c}"))
            .unwrap_or_default();
        self.backend_error(
            BackendErrorKind::Unreachable,
            format!("cannot connect ({e}{cause})"),
            &format!(
                "check that PostgreSQL is running and reachable at {} (host and port in the \
                 connection string, PROV_PG_CONN or the workspace's backend.conn); nothing was \
                 written",
                self.server
            ),
        )
    }

    /// Turns a client error into a `StateError` saying what to do; `doing` says what failed.
    fn error(&self, e: impl Into<PgFail>, doing: &str) -> StateError {
        let e = match e.into() {
            PgFail::Client(e) => e,
            PgFail::Stalled(limit) => {
                return self.backend_error(
                    BackendErrorKind::ConnectionLost,
                    format!(
                        "{doing} failed: the server at {} did not answer within {} \
                         ({ENV_STATEMENT_TIMEOUT})",
                        self.server,
                        show_duration(limit)
                    ),
                    &format!(
                        "prov stopped waiting and abandoned the session (the server releases \
                         its lock when the session ends); {}; check the server's load and the \
                         network, or raise {ENV_STATEMENT_TIMEOUT} (e.g. 5m) for slow statements",
                        if doing == "committing" || doing == "replacing the state" {
                            "whether this last change was committed is unknown (the next plan \
                             shows it)"
                        } else {
                            "nothing more was written"
                        }
                    ),
                )
            }
        };
        if let Some(db) = e.as_db_error() {
            let code = db.code();
            let detail = format!(
                "{doing} failed: {} (SQLSTATE {})",
                db.message(),
                code.code()
            );
            let (kind, what_to_do) = if *code == SqlState::INVALID_PASSWORD
                || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            {
                (
                    BackendErrorKind::Authentication,
                    format!(
                        "check the user ({}) and password in the connection string or \
                         PGPASSWORD, and that the server's pg_hba.conf lets this user connect \
                         from here; nothing was written",
                        self.user
                    ),
                )
            } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
                (
                    BackendErrorKind::Permission,
                    format!(
                        "the role {} may not create or use prov's tables; ask a database \
                         administrator to grant it (GRANT CREATE ON SCHEMA public TO {} for the \
                         first use, or GRANT SELECT, INSERT, UPDATE, DELETE on the prov_* \
                         tables), or create the tables once with a role that may; nothing was \
                         written",
                        self.user, self.user
                    ),
                )
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                (
                    BackendErrorKind::NoDatabase,
                    "create the database (createdb) or name an existing one in the connection \
                     string; nothing was written"
                        .to_string(),
                )
            } else if code.code().starts_with("57P") || code.code().starts_with("08") {
                (BackendErrorKind::ConnectionLost, lost_hint(doing))
            } else {
                (
                    BackendErrorKind::Other,
                    "see the server's message; nothing was written (a failed transaction is \
                     rolled back)"
                        .to_string(),
                )
            };
            return self.backend_error(kind, detail, &what_to_do);
        }
        if e.is_closed() || std::error::Error::source(&e).is_some_and(|c| c.is::<std::io::Error>())
        {
            return self.backend_error(
                BackendErrorKind::ConnectionLost,
                format!("{doing} failed: the session ended ({e})"),
                &lost_hint(doing),
            );
        }
        self.backend_error(
            BackendErrorKind::Other,
            format!("{doing} failed: {e}"),
            "retry; if it persists, report it as a bug in prov",
        )
    }
}

fn lost_hint(doing: &str) -> String {
    let outcome = if doing == "committing" || doing == "replacing the state" {
        "whether this last change was committed is unknown (the next plan shows it)"
    } else {
        "nothing more was written"
    };
    format!(
        "the connection to the server was lost and the state lock with it, so this prov stopped; \
         {outcome}; run the command again"
    )
}

fn serial_of(v: i64) -> u64 {
    // Serials and times are written from u64 values below 2^63.
    v.max(0) as u64
}

fn version_of(backend: &str, address: &str, v: i32) -> Result<u32, StateError> {
    u32::try_from(v).map_err(|_| StateError::Corrupt {
        backend: backend.to_string(),
        address: Some(address.to_string()),
        detail: format!("its format version {v} is negative"),
        what_to_do: "restore the database from a backup".to_string(),
    })
}

/// Why a call to the server failed.
enum PgFail {
    Client(tokio_postgres::Error),
    /// The server sent nothing for this long (the session's statement timeout).
    Stalled(Duration),
}

impl From<tokio_postgres::Error> for PgFail {
    fn from(e: tokio_postgres::Error) -> PgFail {
        PgFail::Client(e)
    }
}

/// A session's bound on waiting for the server, and whether it was already exceeded.
#[derive(Clone)]
struct Guard {
    limit: Duration,
    stalled: Arc<AtomicBool>,
}

/// `PROV_PG_STATEMENT_TIMEOUT` (a duration like 30s, 5m, 500ms), or the default.
fn statement_timeout() -> Result<Duration, StateError> {
    let Some(raw) = std::env::var_os(ENV_STATEMENT_TIMEOUT) else {
        return Ok(STATEMENT_TIMEOUT);
    };
    let raw = raw.to_string_lossy();
    match crate::util::parse_duration(&raw) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(StateError::InvalidConnection {
            detail: format!("{ENV_STATEMENT_TIMEOUT}={raw:?}: must be longer than zero"),
        }),
        Err(e) => Err(StateError::InvalidConnection {
            detail: format!("{ENV_STATEMENT_TIMEOUT}: {e}"),
        }),
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Wakes the parked caller of `block_on`, noting that something arrived.
struct Unpark {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// Polls `fut` to completion on this thread, parking between polls (see module docs). The
/// client's futures are woken only by what the server sends, so a wait longer than the guard's
/// limit without a wake means the server stopped answering: the session is then marked stalled
/// and every later call on it fails at once (its state on the server is unknown).
fn block_on<T>(
    guard: &Guard,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, PgFail> {
    if guard.stalled.load(Ordering::Acquire) {
        return Err(PgFail::Stalled(guard.limit));
    }
    let mut fut = std::pin::pin!(fut);
    let unpark = Arc::new(Unpark {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(unpark.clone());
    let mut cx = Context::from_waker(&waker);
    let mut deadline = Instant::now() + guard.limit;
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out.map_err(PgFail::Client);
        }
        loop {
            if unpark.woken.swap(false, Ordering::AcqRel) {
                deadline = Instant::now() + guard.limit;
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                guard.stalled.store(true, Ordering::Release);
                return Err(PgFail::Stalled(guard.limit));
            }
            // A spurious wake-up only costs another look at the flag.
            std::thread::park_timeout(deadline - now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        let cases = [
            (
                "host=h user=u password=secret dbname=d",
                "host=h user=u password=*** dbname=d",
            ),
            (
                "host=h password = 'se cr\\'et' port=1",
                "host=h password=*** port=1",
            ),
            ("password=secret", "password=***"),
            (
                "postgresql://u:secret@h:5432/d",
                "postgresql://u:***@h:5432/d",
            ),
            (
                "postgres://u:p%40ss@h/d?sslmode=disable",
                "postgres://u:***@h/d?sslmode=disable",
            ),
            (
                "postgresql://u@h/d?password=secret&x=1",
                "postgresql://u@h/d?password=***&x=1",
            ),
            ("host=h user=u", "host=h user=u"),
            ("host=h mypassword=x", "host=h mypassword=x"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_conn(input), want, "{input}");
        }
    }

    #[test]
    fn lock_key_is_stable() {
        // Pinned: every prov version must derive the same key for a workspace.
        assert_eq!(pg_lock_key("default"), pg_lock_key("default"));
        assert_ne!(pg_lock_key("default"), pg_lock_key("other"));
        assert_eq!(fnv1a(&[b"a"]), 0xaf63dc4c8601ec8c_u64 as i64);
    }

    #[test]
    fn parse_names_the_server_without_password() {
        let (_, at) = parse("postgresql://alice:hunter2@db.example:6543/infra", "prod").unwrap();
        assert_eq!(
            at.backend,
            "PostgreSQL state at db.example:6543/infra (workspace prod)"
        );
        assert_eq!(
            at.location,
            "postgresql://db.example:6543/infra (workspace prod)"
        );
        match parse("host=h port=notaport password=hunter2", "w") {
            Err(e @ StateError::InvalidConnection { .. }) => {
                assert!(!e.to_string().contains("hunter2"), "{e}")
            }
            other => panic!("{other:?}"),
        }
        match parse("user=u password=hunter2", "w") {
            Err(e) => assert!(
                !e.to_string().contains("hunter2") && e.to_string().contains("no host"),
                "{e}"
            ),
            Ok(_) => panic!("a connection string without host must be refused"),
        }
    }

    /// A listener on loopback that accepts connections and, with `handshake`, completes
    /// PostgreSQL's startup (AuthenticationOk, ReadyForQuery) and then never answers again;
    /// without it, it never answers at all. Returns the port.
    fn silent_server(handshake: bool) -> u16 {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for mut s in listener.incoming().flatten() {
                if handshake {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).is_ok() {
                        let mut startup = vec![0u8; u32::from_be_bytes(len) as usize - 4];
                        let _ = s.read_exact(&mut startup);
                        let mut reply = vec![b'R'];
                        reply.extend(8u32.to_be_bytes());
                        reply.extend(0u32.to_be_bytes());
                        reply.push(b'Z');
                        reply.extend(5u32.to_be_bytes());
                        reply.push(b'I');
                        let _ = s.write_all(&reply);
                    }
                }
                held.push(s);
            }
        });
        port
    }

    #[test]
    fn a_port_that_never_answers_fails_the_handshake_in_bounded_time() {
        let port = silent_server(false);
        let conn = format!(
            "host=127.0.0.1 port={port} user=u password=hunter2 dbname=d connect_timeout=1"
        );
        let started = Instant::now();
        let e = PgStore::open(&conn, "w", &OpenOptions::new("plan")).unwrap_err();
        let elapsed = started.elapsed();
        let msg = e.to_string();
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
        assert!(msg.contains(&format!("127.0.0.1:{port}/d")), "{msg}");
        assert!(msg.contains("connect_timeout"), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }

    #[test]
    fn a_server_that_stops_answering_fails_the_statement_in_bounded_time() {
        let port = silent_server(true);
        let conn = format!(
            "host=127.0.0.1 port={port} user=u password=hunter2 dbname=d connect_timeout=5"
        );
        let started = Instant::now();
        let e = PgStore::open_with(
            &conn,
            "w",
            &OpenOptions::new("plan"),
            Duration::from_millis(800),
        )
        .unwrap_err();
        let elapsed = started.elapsed();
        let msg = e.to_string();
        // The lock query stalls; dropping the session does not wait a second time.
        assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
        assert!(msg.contains("did not answer within 800ms"), "{msg}");
        assert!(msg.contains(ENV_STATEMENT_TIMEOUT), "{msg}");
        assert!(msg.contains(&format!("127.0.0.1:{port}/d")), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
    }
}
