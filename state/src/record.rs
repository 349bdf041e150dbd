//! The persisted form of one resource: `ResourceRecord`, its versioned JSON envelope, and the
//! upgrade path for records written by older versions of prov.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::depth::{from_slice, read_deep};
use crate::{Change, HistoryEntry, PendingOp, StateError, PENDING_OPERATIONS};

/// Version of the record format written by this build. Bump it when `ResourceRecord` changes
/// shape, and teach `record::upgrade` to turn the previous version into the new one.
///
/// - 1: the first format.
/// - 2: adds `sensitive_paths` (a v1 record upgrades with none).
/// - 3: adds `deposed` and `protected` (a v2 record upgrades with none deposed, unprotected).
///   A version 2 reader must refuse such a record rather than silently forget a deposed
///   object (it would leak) or a protection (it would destroy).
pub const RECORD_FORMAT_VERSION: u32 = 3;

/// Versions whose bodies decode straight into today's `ResourceRecord` (the fields added since
/// have serde defaults that mean what the upgrade would write), skipping the `Value` detour.
fn decodes_directly(format_version: u32) -> bool {
    (2..=RECORD_FORMAT_VERSION).contains(&format_version)
}

/// What the state knows about one applied resource.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// e.g. "server.web-01", "taskserv.web-01.redis", "cluster.bk", "cluster.bk.registry"
    pub address: String,
    /// "server" | "taskserv" | "cluster" | "component"
    pub kind: String,
    /// Provider / taskserv / cluster implementation name, e.g. "sim".
    pub implementation: String,
    /// Id in the real world (server id), if any.
    pub provider_id: Option<String>,
    /// Desired config as written (may contain `${...}` references).
    pub config: Value,
    /// Config with references substituted, as applied.
    pub attributes: Value,
    /// Computed by the implementation (ip addresses, ids...).
    pub outputs: Value,
    /// Addresses this resource depended on when applied.
    pub dependencies: Vec<String>,
    /// Unix seconds.
    pub updated_at: u64,
    /// Attribute paths (as plan diffs name them, e.g. "tags.token") whose values are sensitive:
    /// renderers redact them. The state itself stores the values as they are.
    pub sensitive_paths: Vec<String>,
    /// Objects this address held before a create_before_destroy replace gave it a new one, not
    /// yet destroyed (Terraform's "deposed" objects). Recorded in the same commit in which the
    /// new object takes the address, so no interruption can forget them; every plan destroys them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<Deposed>,
    /// `lifecycle.prevent_destroy` was set when this resource was applied. The protection stays
    /// with the record, even when the block or the setting leaves the configuration, until the
    /// user lifts it explicitly (`prov state unprotect ADDRESS`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub protected: bool,
}

impl ResourceRecord {
    /// This record's current object as a deposed one (none without a provider id): what the
    /// record of the object that takes its address keeps of it.
    pub fn as_deposed(&self, since: u64) -> Option<Deposed> {
        Some(Deposed {
            provider_id: self.provider_id.clone()?,
            attributes: self.attributes.clone(),
            outputs: self.outputs.clone(),
            since,
        })
    }
}

/// An object that no longer holds its address but still exists (see `ResourceRecord::deposed`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Deposed {
    /// Its id in the real world.
    pub provider_id: String,
    /// Its attributes and outputs when it was deposed (what the plan shows it destroys).
    pub attributes: Value,
    pub outputs: Value,
    /// Unix seconds.
    pub since: u64,
}

/// Stored form: `{"format_version": N, "record": {...}}`. The version sits outside the record so a
/// reader can tell "newer than me" from "damaged" before trying to decode the record itself.
/// PostgreSQL keeps the same two parts as two columns; a state dump keeps one envelope per record.
#[derive(Serialize)]
pub(crate) struct EnvelopeOut<'a> {
    pub(crate) format_version: u32,
    pub(crate) record: &'a ResourceRecord,
}

#[derive(Deserialize)]
pub(crate) struct EnvelopeIn<R> {
    pub(crate) format_version: u32,
    pub(crate) record: R,
}

/// Serialises a record at the current version, without the envelope.
pub(crate) fn encode_body(record: &ResourceRecord) -> Result<Vec<u8>, StateError> {
    crate::depth::check_record(record)?;
    serde_json::to_vec(record).map_err(|source| StateError::Encode {
        address: record.address.clone(),
        source,
    })
}

/// Wraps an encoded current-version record in its envelope, byte for byte what
/// `EnvelopeOut` would produce, without serialising the record twice.
pub(crate) fn envelope(body: &[u8]) -> Vec<u8> {
    let head = format!("{{\"format_version\":{RECORD_FORMAT_VERSION},\"record\":");
    let mut out = Vec::with_capacity(head.len() + body.len() + 1);
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out.push(b'}');
    out
}

/// Serialises a record into its stored bytes (JSON envelope at the current version).
#[cfg(test)]
pub(crate) fn encode(record: &ResourceRecord) -> Result<Vec<u8>, StateError> {
    Ok(envelope(&encode_body(record)?))
}

/// A commit ready to store: the final effect per address (the last change wins), in address
/// order. Records are encoded bodies (current version, no envelope); `None` deletes or clears.
#[derive(Debug, Default)]
pub(crate) struct EncodedCommit {
    pub(crate) records: BTreeMap<String, Option<Vec<u8>>>,
    pub(crate) pending: BTreeMap<String, Option<Vec<u8>>>,
}

impl EncodedCommit {
    /// Every address the commit writes (records and pending notes), each once, sorted.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = &String> {
        let mut all: std::collections::BTreeSet<&String> = self.records.keys().collect();
        all.extend(self.pending.keys());
        all.into_iter()
    }
}

/// Encodes a whole dump (`state push`): every record and pending operation, nothing removed yet.
pub(crate) fn encode_dump(dump: &crate::StateDump) -> Result<EncodedCommit, StateError> {
    crate::depth::check_outputs(&dump.outputs)?;
    let mut commit = EncodedCommit::default();
    for r in &dump.resources {
        commit
            .records
            .insert(r.address.clone(), Some(encode_body(r)?));
    }
    for op in &dump.pending {
        commit
            .pending
            .insert(op.address.clone(), Some(encode_pending(op)?));
    }
    Ok(commit)
}

/// Validates and encodes a whole commit before anything is written, so that a bad change aborts
/// the commit with nothing applied.
pub(crate) fn encode_commit(changes: &[Change]) -> Result<EncodedCommit, StateError> {
    let mut out = EncodedCommit::default();
    for c in changes {
        match c {
            Change::Put(r) => {
                check_new_address(&r.address)?;
                out.records.insert(r.address.clone(), Some(encode_body(r)?));
            }
            Change::Delete(a) => {
                check_new_address(a)?;
                out.records.insert(a.clone(), None);
            }
            Change::PutPending(op) => {
                out.pending
                    .insert(op.address.clone(), Some(encode_pending(op)?));
            }
            Change::ClearPending(a) => {
                check_new_address(a)?;
                out.pending.insert(a.clone(), None);
            }
        }
    }
    Ok(out)
}

/// Validates and encodes a pending operation (stored as plain JSON: the state layout version,
/// not a per-op envelope, covers its shape).
pub(crate) fn encode_pending(op: &PendingOp) -> Result<Vec<u8>, StateError> {
    check_new_address(&op.address)?;
    if !PENDING_OPERATIONS.contains(&op.operation.as_str()) {
        return Err(StateError::InvalidChange {
            detail: format!(
                "pending operation \"{}\" on \"{}\" is none of {}",
                op.operation,
                op.address,
                PENDING_OPERATIONS.join(", ")
            ),
        });
    }
    crate::depth::check_stored(&op.address, "its pending operation's spec", &op.spec)?;
    serde_json::to_vec(op).map_err(|source| StateError::Encode {
        address: op.address.clone(),
        source,
    })
}

pub(crate) fn decode_pending(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<PendingOp, StateError> {
    read_deep(|| decode_pending_shallow(backend, address, raw))
}

fn decode_pending_shallow(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<PendingOp, StateError> {
    let op: PendingOp = from_slice(raw).map_err(|e| {
        corrupt_record(
            backend,
            address,
            format!("its pending operation does not decode ({e})"),
        )
    })?;
    if op.address != address {
        return Err(corrupt_record(
            backend,
            address,
            format!(
                "a pending operation stored under \"{address}\" says it is for \"{}\"",
                op.address
            ),
        ));
    }
    Ok(op)
}

/// Addresses become keys (and, in sled's history tree, key prefixes ended by a NUL byte), so
/// they must be non-empty and free of control characters.
pub(crate) fn check_new_address(address: &str) -> Result<(), StateError> {
    if address.is_empty() {
        return Err(StateError::InvalidChange {
            detail: "a record address is empty".to_string(),
        });
    }
    if address.chars().any(char::is_control) {
        return Err(StateError::InvalidChange {
            detail: format!("the address {address:?} contains a control character"),
        });
    }
    Ok(())
}

/// Why a version was replaced, as stored in history.
pub(crate) const REPLACED_BY_UPDATE: &str = "update";
pub(crate) const REPLACED_BY_DELETE: &str = "delete";

/// History entry as sled and the memory store keep it: a fixed header (serial, time, why) then
/// the replaced version's stored bytes untouched, so keeping a version costs no re-encoding and
/// an old-format version is upgraded when read, like any record.
pub(crate) fn encode_history(serial: u64, at: u64, replaced_by: &str, stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + stored.len());
    out.extend_from_slice(&serial.to_be_bytes());
    out.extend_from_slice(&at.to_be_bytes());
    out.push(u8::from(replaced_by == REPLACED_BY_DELETE));
    out.extend_from_slice(stored);
    out
}

pub(crate) fn decode_history(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<HistoryEntry, StateError> {
    if raw.len() < 17 || raw[16] > 1 {
        return Err(corrupt_record(
            backend,
            address,
            "a history entry is truncated".to_string(),
        ));
    }
    let word = |at: usize| u64::from_be_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    Ok(HistoryEntry {
        serial: word(0),
        at: word(8),
        replaced_by: if raw[16] == 1 {
            REPLACED_BY_DELETE
        } else {
            REPLACED_BY_UPDATE
        }
        .to_string(),
        record: decode(backend, address, &raw[17..])?,
    })
}

/// Decodes stored bytes found under `address` in the state described by `backend`
/// (e.g. "sled state at .prov/state"), upgrading older formats. Records nested deeper than
/// serde_json's default limit (written by an older prov) are read too (`depth::read_deep`).
pub(crate) fn decode(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<ResourceRecord, StateError> {
    read_deep(|| decode_shallow(backend, address, raw))
}

fn decode_shallow(backend: &str, address: &str, raw: &[u8]) -> Result<ResourceRecord, StateError> {
    // Fast path: current version, decoded straight into the struct without an intermediate Value
    // tree; this is what keeps a 10,000-record snapshot cheap.
    if let Ok(env) = from_slice::<EnvelopeIn<ResourceRecord>>(raw) {
        if decodes_directly(env.format_version) {
            return check_address(backend, address, env.record);
        }
    }
    let env: EnvelopeIn<Value> = from_slice(raw).map_err(|e| {
        corrupt_record(
            backend,
            address,
            format!("the stored bytes are not a record envelope ({e})"),
        )
    })?;
    decode_value(backend, address, env.format_version, env.record)
}

/// A record as stored, but with its configuration skipped rather than built.
#[derive(Deserialize)]
struct RecordWithoutConfig {
    address: String,
    kind: String,
    implementation: String,
    provider_id: Option<String>,
    // Required like ResourceRecord's: a record without one is damaged either way.
    #[allow(dead_code)]
    config: serde::de::IgnoredAny,
    // Kept by the thousand for a whole plan: without the parser's slack.
    #[serde(deserialize_with = "crate::util::compact_value")]
    attributes: Value,
    #[serde(deserialize_with = "crate::util::compact_value")]
    outputs: Value,
    dependencies: Vec<String>,
    updated_at: u64,
    sensitive_paths: Vec<String>,
    #[serde(default)]
    deposed: Vec<Deposed>,
    #[serde(default)]
    protected: bool,
}

/// [`decode`] with the record's `config` left null (see `StateRead::snapshot_without_configs`).
pub(crate) fn decode_without_config(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<ResourceRecord, StateError> {
    read_deep(|| decode_without_config_shallow(backend, address, raw))
}

fn decode_without_config_shallow(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<ResourceRecord, StateError> {
    if let Ok(env) = from_slice::<EnvelopeIn<RecordWithoutConfig>>(raw) {
        if decodes_directly(env.format_version) {
            let r = env.record;
            return check_address(
                backend,
                address,
                ResourceRecord {
                    address: r.address,
                    kind: r.kind,
                    implementation: r.implementation,
                    provider_id: r.provider_id,
                    config: Value::Null,
                    attributes: r.attributes,
                    outputs: r.outputs,
                    dependencies: r.dependencies,
                    updated_at: r.updated_at,
                    sensitive_paths: r.sensitive_paths,
                    deposed: r.deposed,
                    protected: r.protected,
                },
            );
        }
    }
    // Older formats and damage: the full path upgrades or reports them.
    let mut r = decode(backend, address, raw)?;
    r.config = Value::Null;
    Ok(r)
}

/// Decodes a record kept as separate version and body (PostgreSQL's two columns), upgrading
/// older formats.
pub(crate) fn decode_body(
    backend: &str,
    address: &str,
    format_version: u32,
    body: &[u8],
) -> Result<ResourceRecord, StateError> {
    read_deep(|| decode_body_shallow(backend, address, format_version, body))
}

fn decode_body_shallow(
    backend: &str,
    address: &str,
    format_version: u32,
    body: &[u8],
) -> Result<ResourceRecord, StateError> {
    if decodes_directly(format_version) {
        if let Ok(record) = from_slice::<ResourceRecord>(body) {
            return check_address(backend, address, record);
        }
    }
    let value: Value = from_slice(body).map_err(|e| {
        corrupt_record(
            backend,
            address,
            format!("the stored record is not JSON ({e})"),
        )
    })?;
    decode_value(backend, address, format_version, value)
}

/// Decodes many stored records (sorted by address) into a map, with `decode_one` turning an item
/// into a record. Decoding is the bulk of a snapshot's cost (building JSON value trees), so large
/// states are split across threads; the error reported is that of the first bad record in
/// address order, as if decoded one by one.
pub(crate) fn decode_all<T: Sync>(
    raw: Vec<T>,
    opts: crate::ReadOptions,
    decode_one: impl Fn(&T) -> Result<ResourceRecord, StateError> + Sync,
) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    // Below this many records per thread, spawning costs more than it saves.
    const MIN_PER_THREAD: usize = 1000;
    let cores = if opts.one_thread {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    let threads = cores.min(8).min(raw.len() / MIN_PER_THREAD).max(1);
    let decode_chunk = |chunk: &[T]| -> Result<Vec<ResourceRecord>, StateError> {
        chunk.iter().map(&decode_one).collect()
    };
    let decoded: Vec<ResourceRecord> = if threads == 1 {
        decode_chunk(&raw)?
    } else {
        let chunk_len = raw.len().div_ceil(threads);
        let parts = std::thread::scope(|scope| {
            let handles: Vec<_> = raw
                .chunks(chunk_len)
                .map(|chunk| scope.spawn(|| decode_chunk(chunk)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect::<Vec<_>>()
        });
        let mut all = Vec::with_capacity(raw.len());
        for part in parts {
            all.extend(part?);
        }
        all
    };
    // Already in address order, so the map is bulk-built rather than inserted into.
    Ok(decoded
        .into_iter()
        .map(|r| (r.address.clone(), r))
        .collect())
}

/// Decodes a record held as a JSON value with a known format version (the shape a database
/// backend with a separate version column would hand over).
pub(crate) fn decode_value(
    backend: &str,
    address: &str,
    format_version: u32,
    value: Value,
) -> Result<ResourceRecord, StateError> {
    if format_version > RECORD_FORMAT_VERSION {
        return Err(StateError::UnsupportedFormat {
            backend: backend.to_string(),
            address: Some(address.to_string()),
            found: format_version,
            supported: RECORD_FORMAT_VERSION,
        });
    }
    let value = if format_version < RECORD_FORMAT_VERSION {
        upgrade(format_version, value).map_err(|detail| corrupt_record(backend, address, detail))?
    } else {
        value
    };
    let record: ResourceRecord = serde_json::from_value(value).map_err(|e| {
        corrupt_record(
            backend,
            address,
            format!("the record does not decode ({e})"),
        )
    })?;
    check_address(backend, address, record)
}

/// Turns a record of an older format version into the current format, one version at a time.
/// To add version N+1: bump `RECORD_FORMAT_VERSION` and add the `N => ...` step here.
pub(crate) fn upgrade(from_version: u32, mut record: Value) -> Result<Value, String> {
    let mut version = from_version;
    while version < RECORD_FORMAT_VERSION {
        record = match version {
            1 => {
                let Value::Object(mut fields) = record else {
                    return Err("a version 1 record is not a JSON object".to_string());
                };
                fields.insert("sensitive_paths".to_string(), Value::Array(Vec::new()));
                Value::Object(fields)
            }
            // Version 3 only adds fields whose absence means "none deposed, unprotected".
            2 => record,
            other => {
                return Err(format!(
                    "record format version {other} was never written by any prov \
                     (known versions: 1..={RECORD_FORMAT_VERSION})"
                ))
            }
        };
        version += 1;
    }
    Ok(record)
}

fn check_address(
    backend: &str,
    address: &str,
    record: ResourceRecord,
) -> Result<ResourceRecord, StateError> {
    // The key and the record must agree, or lookups by address would return the wrong resource.
    if record.address != address {
        return Err(corrupt_record(
            backend,
            address,
            format!(
                "it is stored under \"{address}\" but says it is \"{}\"",
                record.address
            ),
        ));
    }
    Ok(record)
}

fn corrupt_record(backend: &str, address: &str, detail: String) -> StateError {
    StateError::Corrupt {
        backend: backend.to_string(),
        address: Some(address.to_string()),
        detail,
        what_to_do: "restore the state from a backup taken while no prov was running; \
                     prov wrote nothing because of this error"
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rec(addr: &str) -> ResourceRecord {
        ResourceRecord {
            address: addr.into(),
            kind: "server".into(),
            implementation: "sim".into(),
            provider_id: Some("i-1".into()),
            config: json!({"plan": "small", "tags": {"peer": "${server.a.ip}"}}),
            attributes: json!({"plan": "small", "tags": {"peer": "10.0.0.1"}}),
            outputs: json!({"ip": "10.0.0.2"}),
            dependencies: vec!["server.a".into()],
            updated_at: 1_700_000_000,
            sensitive_paths: vec!["tags.peer".into()],
            deposed: vec![Deposed {
                provider_id: "sim-old".into(),
                attributes: json!({"plan": "small"}),
                outputs: json!({"ip": "10.0.0.9"}),
                since: 1_699_999_999,
            }],
            protected: true,
        }
    }

    #[test]
    fn round_trip() {
        let r = rec("server.b");
        let raw = encode(&r).unwrap();
        assert!(raw.starts_with(b"{\"format_version\":3,"));
        let via_serde = serde_json::to_vec(&EnvelopeOut {
            format_version: RECORD_FORMAT_VERSION,
            record: &r,
        })
        .unwrap();
        assert_eq!(raw, via_serde, "envelope() matches the serde form");
        assert_eq!(decode("test", "server.b", &raw).unwrap(), r);
        let body = encode_body(&r).unwrap();
        assert_eq!(decode_body("test", "server.b", 3, &body).unwrap(), r);
    }

    #[test]
    fn v2_upgrades_to_v3_with_nothing_deposed_or_protected() {
        let mut r = rec("server.b");
        r.deposed.clear();
        r.protected = false;
        let mut v2 = serde_json::to_value(&r).unwrap();
        let o = v2.as_object_mut().unwrap();
        assert!(!o.contains_key("deposed") && !o.contains_key("protected"));
        o.remove("deposed");
        let raw = json!({"format_version": 2, "record": v2}).to_string();
        assert_eq!(decode("test", "server.b", raw.as_bytes()).unwrap(), r);
        let lean = decode_without_config("test", "server.b", raw.as_bytes()).unwrap();
        assert!(lean.deposed.is_empty() && !lean.protected);
        let body = serde_json::to_vec(&v2).unwrap();
        assert_eq!(decode_body("test", "server.b", 2, &body).unwrap(), r);
        assert_eq!(upgrade(2, v2.clone()).unwrap(), v2);
    }

    #[test]
    fn without_config_is_the_record_minus_its_config() {
        let r = rec("server.b");
        let raw = encode(&r).unwrap();
        let lean = decode_without_config("test", "server.b", &raw).unwrap();
        assert_eq!(lean.config, Value::Null);
        assert_eq!(
            ResourceRecord {
                config: r.config.clone(),
                ..lean
            },
            r
        );
        // Older formats and damage go the full way: upgraded, or reported as corrupt.
        let mut v1 = serde_json::to_value(&r).unwrap();
        for k in ["sensitive_paths", "deposed", "protected"] {
            v1.as_object_mut().unwrap().remove(k);
        }
        let raw = json!({"format_version": 1, "record": v1}).to_string();
        let lean = decode_without_config("test", "server.b", raw.as_bytes()).unwrap();
        assert!(lean.config.is_null() && lean.sensitive_paths.is_empty());
        assert!(lean.deposed.is_empty() && !lean.protected);
        assert!(matches!(
            decode_without_config("test", "server.c", &encode(&r).unwrap()),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn v1_upgrades_to_v2() {
        let mut v1 = serde_json::to_value(rec("server.b")).unwrap();
        for k in ["sensitive_paths", "deposed", "protected"] {
            v1.as_object_mut().unwrap().remove(k);
        }
        let raw = json!({"format_version": 1, "record": v1}).to_string();
        let got = decode("test", "server.b", raw.as_bytes()).unwrap();
        assert!(got.sensitive_paths.is_empty());
        assert_eq!(got.attributes, rec("server.b").attributes);
        let body = serde_json::to_vec(&v1).unwrap();
        assert_eq!(decode_body("test", "server.b", 1, &body).unwrap(), got);
        // A v2 record must carry the field: only the upgrade adds it.
        let raw = json!({"format_version": 2, "record": v1}).to_string();
        assert!(matches!(
            decode("test", "server.b", raw.as_bytes()),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn history_entry_round_trip() {
        let stored = encode(&rec("server.b")).unwrap();
        let raw = encode_history(7, 1_700_000_001, REPLACED_BY_DELETE, &stored);
        let e = decode_history("test", "server.b", &raw).unwrap();
        assert_eq!(
            (e.serial, e.at, e.replaced_by.as_str()),
            (7, 1_700_000_001, "delete")
        );
        assert_eq!(e.record, rec("server.b"));
        assert!(matches!(
            decode_history("test", "server.b", &raw[..10]),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn newer_version_is_unsupported() {
        let raw = br#"{"format_version":7,"record":{"whatever":true}}"#;
        match decode("test", "server.b", raw) {
            Err(StateError::UnsupportedFormat {
                address, found: 7, ..
            }) => assert_eq!(address.as_deref(), Some("server.b")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damage_is_corrupt_not_panic() {
        for raw in [
            &b""[..],
            b"\xff\x00",
            b"{\"format_version\":1}",
            b"{\"format_version\":1,\"record\":{\"address\":\"server.b\"}}",
            b"{\"format_version\":1,\"record\":[]}",
            b"{\"format_version\":0,\"record\":{}}",
        ] {
            match decode("test", "server.b", raw) {
                Err(StateError::Corrupt { address, .. }) => {
                    assert_eq!(address.as_deref(), Some("server.b"))
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn key_mismatch_is_corrupt() {
        let raw = encode(&rec("server.b")).unwrap();
        assert!(matches!(
            decode("test", "server.c", &raw),
            Err(StateError::Corrupt { .. })
        ));
    }
}
