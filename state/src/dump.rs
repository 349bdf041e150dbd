//! `StateDump`: the whole state as one versioned JSON document, for `prov state pull|push`, for
//! moving a state between backends, and for backups.
//!
//! Shape (format version 1):
//! ```json
//! {"format": "prov-state", "format_version": 1, "lineage": "...", "serial": 42,
//!  "resources": [{"format_version": 2, "record": {...}}, ...],
//!  "outputs": {...}, "pending": [{...PendingOp...}]}
//! ```
//! Each resource keeps the same envelope as in the stores, so a dump pulled by an older prov
//! (records of an older format) is upgraded when read, and one from a newer prov is refused by
//! record. Pending operations are plain JSON; the dump's own `format_version` covers their shape.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::record::{check_new_address, decode_value, encode_pending, EnvelopeIn, EnvelopeOut};
use crate::{PendingOp, ResourceRecord, Snapshot, StateError, StateMeta};

/// The `format` field of every dump: says what the file is before anything else is read.
pub const DUMP_FORMAT: &str = "prov-state";
/// Version of the dump document written by this build.
pub const DUMP_FORMAT_VERSION: u32 = 1;

/// The whole state, portable. Resources and pending operations are in address order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateDump {
    /// Always `DUMP_FORMAT`.
    pub format: String,
    pub format_version: u32,
    pub lineage: String,
    pub serial: u64,
    #[serde(with = "envelopes")]
    pub resources: Vec<ResourceRecord>,
    pub outputs: Map<String, Value>,
    pub pending: Vec<PendingOp>,
}

impl From<Snapshot> for StateDump {
    fn from(s: Snapshot) -> StateDump {
        StateDump {
            format: DUMP_FORMAT.to_string(),
            format_version: DUMP_FORMAT_VERSION,
            lineage: s.meta.lineage,
            serial: s.meta.serial,
            resources: s.resources.into_values().collect(),
            outputs: s.outputs,
            pending: s.pending.into_values().collect(),
        }
    }
}

impl StateDump {
    /// The document as pretty JSON (what `state pull` writes).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("a dump always serialises");
        out.push(b'\n');
        out
    }

    /// Reads a document written by `to_json` (of this or an older prov), naming `source` (a file
    /// name, "standard input") in errors. Refuses other documents and newer formats. Reads dumps
    /// of states with values nested deeper than serde_json's default limit too (pulled from a
    /// state an older prov wrote; see `read_deep`).
    pub fn from_json(raw: &[u8], source: &str) -> Result<StateDump, StateError> {
        crate::depth::read_deep(|| Self::from_json_shallow(raw, source))
    }

    fn from_json_shallow(raw: &[u8], source: &str) -> Result<StateDump, StateError> {
        let invalid = |detail: String| StateError::InvalidDump {
            input: source.to_string(),
            detail,
        };
        // The header first, so "not a dump" and "too new" are told apart from damage.
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
            format_version: Option<u32>,
        }
        let header: Header = crate::depth::from_slice(raw)
            .map_err(|e| invalid(format!("it is not a JSON object ({e})")))?;
        if header.format.as_deref() != Some(DUMP_FORMAT) {
            return Err(invalid(format!(
                "it has no \"format\": \"{DUMP_FORMAT}\" (not a file written by `prov state pull`)"
            )));
        }
        match header.format_version {
            Some(v) if v > DUMP_FORMAT_VERSION => {
                return Err(StateError::UnsupportedFormat {
                    backend: format!("state dump {source}"),
                    address: None,
                    found: v,
                    supported: DUMP_FORMAT_VERSION,
                })
            }
            Some(_) => {}
            None => return Err(invalid("it has no \"format_version\"".to_string())),
        }
        let dump: StateDump = crate::depth::from_slice(raw).map_err(|e| invalid(e.to_string()))?;
        dump.validate().map_err(invalid)?;
        Ok(dump)
    }

    pub fn meta(&self) -> StateMeta {
        StateMeta {
            lineage: self.lineage.clone(),
            serial: self.serial,
        }
    }

    /// What a store checks before replacing itself with this dump.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.format != DUMP_FORMAT {
            return Err(format!(
                "its format is \"{}\", not \"{DUMP_FORMAT}\"",
                self.format
            ));
        }
        if self.format_version == 0 || self.format_version > DUMP_FORMAT_VERSION {
            return Err(format!(
                "its format version {} is not one this prov writes (1..={DUMP_FORMAT_VERSION})",
                self.format_version
            ));
        }
        if self.lineage.is_empty() {
            return Err("it has no lineage".to_string());
        }
        let mut seen = BTreeSet::new();
        for r in &self.resources {
            check_new_address(&r.address).map_err(|e| e.to_string())?;
            if !seen.insert(r.address.as_str()) {
                return Err(format!("it holds \"{}\" twice", r.address));
            }
        }
        let mut seen = BTreeSet::new();
        for op in &self.pending {
            encode_pending(op).map_err(|e| e.to_string())?;
            if !seen.insert(op.address.as_str()) {
                return Err(format!(
                    "it holds two pending operations for \"{}\"",
                    op.address
                ));
            }
        }
        Ok(())
    }
}

/// Whether a store at `ours` (holding anything at all: `ours_empty` false) may be replaced by
/// `dump`; returns the serial the store takes. See `StateWrite::replace_all`.
pub(crate) fn push_serial(
    ours: &StateMeta,
    ours_empty: bool,
    dump: &StateDump,
    force: bool,
    source: &str,
) -> Result<u64, StateError> {
    dump.validate().map_err(|detail| StateError::InvalidDump {
        input: source.to_string(),
        detail,
    })?;
    if !force {
        let fresh = ours.serial == 0 && ours_empty;
        if dump.lineage != ours.lineage && !fresh {
            return Err(StateError::LineageMismatch {
                ours: ours.lineage.clone(),
                theirs: dump.lineage.clone(),
            });
        }
        if dump.serial < ours.serial {
            return Err(StateError::OlderSerial {
                ours: ours.serial,
                theirs: dump.serial,
            });
        }
    }
    Ok(ours.serial.max(dump.serial) + 1)
}

/// Serde for `resources`: each record in its versioned envelope, upgraded when read.
mod envelopes {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(records: &[ResourceRecord], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(records.iter().map(|record| EnvelopeOut {
            format_version: crate::RECORD_FORMAT_VERSION,
            record,
        }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ResourceRecord>, D::Error> {
        let raw: Vec<EnvelopeIn<Value>> = Vec::deserialize(d)?;
        raw.into_iter()
            .enumerate()
            .map(|(i, env)| {
                let address = env
                    .record
                    .get("address")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| D::Error::custom(format!("resource {i} has no address")))?;
                decode_value("state dump", &address, env.format_version, env.record)
                    .map_err(D::Error::custom)
            })
            .collect()
    }
}
