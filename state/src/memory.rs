//! `MemoryStore`: the in-memory backend for tests. It keeps records encoded exactly as the
//! persistent backends do, so the conformance suite exercises the same encode/decode path.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::dump::push_serial;
use crate::record::{
    decode, decode_all, decode_history, decode_pending, decode_without_config, encode_history,
    envelope, EncodedCommit, REPLACED_BY_DELETE, REPLACED_BY_UPDATE,
};
use crate::util::{now_secs, random_hex};
use crate::{
    Change, HistoryEntry, LockInfo, LockScope, ReadOptions, ResourceRecord, Snapshot, StateDump,
    StateError, StateMeta, StateRead, StateWrite, HISTORY_LIMIT,
};

const BACKEND: &str = "in-memory state";

/// An in-memory state. Clones are handles to the same state with the same lock identity;
/// [`MemoryStore::reopen`] is another writer of it (like a second process opening a file-based
/// one).
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    owner: Arc<Owner>,
}

/// One opener's lock identity; its resource locks are released when the last handle goes.
#[derive(Debug)]
struct Owner {
    info: LockInfo,
    scope: LockScope,
    inner: Arc<Mutex<Inner>>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let id = &self.info.id;
        inner.locks.retain(|_, h| &h.id != id);
    }
}

#[derive(Debug)]
struct Inner {
    lineage: String,
    serial: u64,
    /// Record envelopes, as sled stores them.
    records: BTreeMap<String, Vec<u8>>,
    outputs: Map<String, Value>,
    pending: BTreeMap<String, Vec<u8>>,
    /// Newest last; entries in sled's encoding.
    history: BTreeMap<String, VecDeque<Vec<u8>>>,
    /// The serial each address was last written at.
    versions: BTreeMap<String, u64>,
    /// Resource locks: address -> holder.
    locks: BTreeMap<String, LockInfo>,
}

impl MemoryStore {
    /// A new, empty state with a fresh lineage and serial 0.
    pub fn new() -> Self {
        let inner = Arc::new(Mutex::new(Inner {
            lineage: random_hex(16),
            serial: 0,
            records: BTreeMap::new(),
            outputs: Map::new(),
            pending: BTreeMap::new(),
            history: BTreeMap::new(),
            versions: BTreeMap::new(),
            locks: BTreeMap::new(),
        }));
        MemoryStore {
            owner: Arc::new(Owner {
                info: crate::lock::new_holder("test", BACKEND.to_string()),
                scope: LockScope::Workspace,
                inner: inner.clone(),
            }),
            inner,
        }
    }

    /// Another writer of the same state, with a lock identity of its own: `scope` says whether
    /// it must lock resources before writing them.
    pub fn reopen(&self, operation: &str, scope: LockScope) -> MemoryStore {
        MemoryStore {
            owner: Arc::new(Owner {
                info: crate::lock::new_holder(operation, BACKEND.to_string()),
                scope,
                inner: self.inner.clone(),
            }),
            inner: self.inner.clone(),
        }
    }

    /// This handle's lock identity.
    pub fn lock_info(&self) -> &LockInfo {
        &self.owner.info
    }

    /// Refuses a write to addresses this handle did not lock (resource scope only).
    fn check_locked(&self, inner: &Inner, commit: &EncodedCommit) -> Result<(), StateError> {
        if self.owner.scope == LockScope::Workspace {
            return Ok(());
        }
        let id = &self.owner.info.id;
        let missing: Vec<String> = commit
            .addresses()
            .filter(|a| inner.locks.get(*a).is_none_or(|h| &h.id != id))
            .cloned()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(StateError::NotLocked {
            backend: BACKEND.to_string(),
            operation: self.owner.info.operation.clone(),
            addresses: missing,
        })
    }

    /// Test hook: stores `raw` verbatim as the record at `address`, bypassing encoding, to
    /// simulate records written by another prov version or damaged ones. Serial is unchanged.
    #[doc(hidden)]
    pub fn put_raw_record(&self, address: &str, raw: &[u8]) {
        self.lock()
            .records
            .insert(address.to_string(), raw.to_vec());
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the guard is held with state half-changed, so a poisoned lock
        // still guards consistent data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A snapshot read as `opts` says.
    fn read_snapshot(&self, opts: ReadOptions) -> Result<Snapshot, StateError> {
        let decode_one = if opts.without_configs {
            decode_without_config
        } else {
            decode
        };
        // Copy under the lock, decode outside it: a consistent view without stalling writers.
        let (meta, outputs, raw, pending) = {
            let inner = self.lock();
            let raw: Vec<(String, Vec<u8>)> = inner
                .records
                .iter()
                .map(|(a, r)| (a.clone(), r.clone()))
                .collect();
            (
                inner.meta(),
                inner.outputs.clone(),
                raw,
                inner.pending.clone(),
            )
        };
        Ok(Snapshot {
            meta,
            resources: decode_all(raw, opts, |(a, r)| decode_one(BACKEND, a, r))?,
            outputs,
            pending: pending
                .iter()
                .map(|(a, raw)| Ok((a.clone(), decode_pending(BACKEND, a, raw)?)))
                .collect::<Result<_, StateError>>()?,
        })
    }
}

impl StateRead for MemoryStore {
    fn snapshot_with(&self, opts: ReadOptions) -> Result<Snapshot, StateError> {
        self.read_snapshot(opts)
    }

    fn meta(&self) -> Result<StateMeta, StateError> {
        Ok(self.lock().meta())
    }

    fn record(&self, address: &str) -> Result<Option<ResourceRecord>, StateError> {
        let inner = self.lock();
        inner
            .records
            .get(address)
            .map(|raw| decode(BACKEND, address, raw))
            .transpose()
    }

    fn history(&self, address: &str) -> Result<Vec<HistoryEntry>, StateError> {
        let inner = self.lock();
        inner
            .history
            .get(address)
            .into_iter()
            .flat_map(|h| h.iter().rev())
            .map(|raw| decode_history(BACKEND, address, raw))
            .collect()
    }

    fn changed_since(
        &self,
        addresses: &BTreeSet<String>,
        serial: u64,
    ) -> Result<BTreeSet<String>, StateError> {
        let inner = self.lock();
        Ok(addresses
            .iter()
            .filter(|a| inner.versions.get(*a).is_some_and(|v| *v > serial))
            .cloned()
            .collect())
    }

    fn resource_locks(&self) -> Result<BTreeMap<String, LockInfo>, StateError> {
        let inner = self.lock();
        let id = &self.owner.info.id;
        Ok(inner
            .locks
            .iter()
            .filter(|(_, h)| &h.id != id)
            .map(|(a, h)| (a.clone(), h.clone()))
            .collect())
    }
}

impl StateWrite for MemoryStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = crate::record::encode_commit(changes)?;
        let mut inner = self.lock();
        self.check_locked(&inner, &encoded)?;
        inner.serial += 1;
        inner.apply(encoded, now_secs());
        Ok(inner.serial)
    }

    fn set_outputs(&self, outputs: Map<String, Value>) -> Result<u64, StateError> {
        crate::depth::check_outputs(&outputs)?;
        let mut inner = self.lock();
        inner.outputs = outputs;
        inner.serial += 1;
        Ok(inner.serial)
    }

    fn replace_all(&self, dump: &StateDump, force: bool) -> Result<u64, StateError> {
        let mut commit = crate::record::encode_dump(dump)?;
        let mut inner = self.lock();
        let empty =
            inner.records.is_empty() && inner.pending.is_empty() && inner.outputs.is_empty();
        let serial = push_serial(&inner.meta(), empty, dump, force, "the pushed state")?;
        for address in inner.records.keys() {
            commit.records.entry(address.clone()).or_insert(None);
        }
        for address in inner.pending.keys() {
            commit.pending.entry(address.clone()).or_insert(None);
        }
        inner.serial = serial;
        inner.lineage = dump.lineage.clone();
        inner.outputs = dump.outputs.clone();
        inner.apply(commit, now_secs());
        Ok(serial)
    }

    fn lock_resources(
        &self,
        addresses: &BTreeSet<String>,
        timeout: Duration,
    ) -> Result<(), StateError> {
        if self.owner.scope == LockScope::Workspace {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let me = &self.owner.info;
        loop {
            {
                let mut inner = self.lock();
                let mut held: Vec<(&String, LockInfo)> = addresses
                    .iter()
                    .filter_map(|a| inner.locks.get(a).map(|h| (a, h.clone())))
                    .filter(|(_, h)| h.id != me.id)
                    .collect();
                if held.is_empty() {
                    for a in addresses {
                        inner.locks.insert(a.clone(), me.clone());
                    }
                    return Ok(());
                }
                if Instant::now() >= deadline {
                    let holder = held[0].1.clone();
                    held.retain(|(_, h)| h.id == holder.id);
                    return Err(StateError::ResourcesLocked {
                        holder: Box::new(holder),
                        addresses: held.into_iter().map(|(a, _)| a.clone()).collect(),
                    });
                }
            }
            std::thread::sleep(Duration::from_millis(10).min(deadline - Instant::now()));
        }
    }

    fn update_outputs(
        &self,
        compute: &mut dyn FnMut(&Snapshot) -> Map<String, Value>,
    ) -> Result<u64, StateError> {
        let mut inner = self.lock();
        let snap = inner.snapshot()?;
        let outputs = compute(&snap);
        crate::depth::check_outputs(&outputs)?;
        inner.outputs = outputs;
        inner.serial += 1;
        Ok(inner.serial)
    }
}

impl Inner {
    fn meta(&self) -> StateMeta {
        StateMeta {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }

    /// The whole state, decoded (without configurations), under the caller's lock.
    fn snapshot(&self) -> Result<Snapshot, StateError> {
        Ok(Snapshot {
            meta: self.meta(),
            resources: self
                .records
                .iter()
                .map(|(a, raw)| Ok((a.clone(), decode_without_config(BACKEND, a, raw)?)))
                .collect::<Result<_, StateError>>()?,
            outputs: self.outputs.clone(),
            pending: self
                .pending
                .iter()
                .map(|(a, raw)| Ok((a.clone(), decode_pending(BACKEND, a, raw)?)))
                .collect::<Result<_, StateError>>()?,
        })
    }

    /// Applies an encoded commit whose serial `self.serial` already is.
    fn apply(&mut self, commit: EncodedCommit, at: u64) {
        for address in commit.addresses() {
            self.versions.insert(address.clone(), self.serial);
        }
        for (address, body) in commit.records {
            let new = body.map(|b| envelope(&b));
            let old = match &new {
                Some(raw) => self.records.insert(address.clone(), raw.clone()),
                None => self.records.remove(&address),
            };
            let Some(old) = old else { continue };
            // Re-putting the identical record replaces nothing worth keeping.
            if new.as_ref() == Some(&old) {
                continue;
            }
            let why = if new.is_some() {
                REPLACED_BY_UPDATE
            } else {
                REPLACED_BY_DELETE
            };
            let h = self.history.entry(address).or_default();
            h.push_back(encode_history(self.serial, at, why, &old));
            if h.len() > HISTORY_LIMIT {
                h.pop_front();
            }
        }
        for (address, raw) in commit.pending {
            match raw {
                Some(raw) => self.pending.insert(address, raw),
                None => self.pending.remove(&address),
            };
        }
    }
}
