//! `MemoryStore`: the in-memory backend for tests. It keeps records encoded exactly as the
//! persistent backends do, so the conformance suite exercises the same encode/decode path.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::dump::push_serial;
use crate::record::{
    decode, decode_all, decode_history, decode_pending, decode_without_config, encode_history,
    envelope, EncodedCommit, REPLACED_BY_DELETE, REPLACED_BY_UPDATE,
};
use crate::util::{now_secs, random_hex};
use crate::{
    Change, HistoryEntry, ReadOptions, ResourceRecord, Snapshot, StateDump, StateError, StateMeta,
    StateRead, StateWrite, HISTORY_LIMIT,
};

const BACKEND: &str = "in-memory state";

/// An in-memory state. Clones are handles to the same state (like reopening a file-based one).
#[derive(Clone, Debug)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
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
}

impl MemoryStore {
    /// A new, empty state with a fresh lineage and serial 0.
    pub fn new() -> Self {
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                lineage: random_hex(16),
                serial: 0,
                records: BTreeMap::new(),
                outputs: Map::new(),
                pending: BTreeMap::new(),
                history: BTreeMap::new(),
            })),
        }
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
}

impl StateWrite for MemoryStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = crate::record::encode_commit(changes)?;
        let mut inner = self.lock();
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
}

impl Inner {
    fn meta(&self) -> StateMeta {
        StateMeta {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }

    /// Applies an encoded commit whose serial `self.serial` already is.
    fn apply(&mut self, commit: EncodedCommit, at: u64) {
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
