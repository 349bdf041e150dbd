//! `MemoryStore`: the in-memory backend for tests. It keeps records encoded exactly as the
//! persistent backends do, so the conformance suite exercises the same encode/decode path.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Map, Value};

use crate::record::{decode, decode_all, encode_changes};
use crate::util::random_hex;
use crate::{Change, ResourceRecord, Snapshot, StateError, StateMeta, StateRead, StateWrite};

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
    records: BTreeMap<String, Vec<u8>>,
    outputs: Map<String, Value>,
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

impl StateRead for MemoryStore {
    fn snapshot(&self) -> Result<Snapshot, StateError> {
        // Copy under the lock, decode outside it: a consistent view without stalling writers.
        let (meta, outputs, raw) = {
            let inner = self.lock();
            let raw: Vec<(String, Vec<u8>)> = inner
                .records
                .iter()
                .map(|(a, r)| (a.clone(), r.clone()))
                .collect();
            (inner.meta(), inner.outputs.clone(), raw)
        };
        Ok(Snapshot {
            meta,
            resources: decode_all(BACKEND, raw)?,
            outputs,
        })
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
}

impl StateWrite for MemoryStore {
    fn commit(&self, changes: &[Change]) -> Result<u64, StateError> {
        let encoded = encode_changes(changes)?;
        let mut inner = self.lock();
        for (addr, raw) in encoded {
            match raw {
                Some(raw) => inner.records.insert(addr, raw),
                None => inner.records.remove(&addr),
            };
        }
        inner.serial += 1;
        Ok(inner.serial)
    }

    fn set_outputs(&self, outputs: Map<String, Value>) -> Result<u64, StateError> {
        let mut inner = self.lock();
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
}
