//! The persisted form of one resource: `ResourceRecord`, its versioned JSON envelope, and the
//! upgrade path for records written by older versions of prov.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Change, StateError};

/// Version of the record format written by this build. Bump it when `ResourceRecord` changes
/// shape, and teach `record::upgrade` to turn the previous version into the new one.
pub const RECORD_FORMAT_VERSION: u32 = 1;

/// What the state knows about one applied resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
}

/// Stored form: `{"format_version": N, "record": {...}}`. The version sits outside the record so a
/// reader can tell "newer than me" from "damaged" before trying to decode the record itself.
#[derive(Serialize)]
struct EnvelopeOut<'a> {
    format_version: u32,
    record: &'a ResourceRecord,
}

#[derive(Deserialize)]
struct EnvelopeIn<R> {
    format_version: u32,
    record: R,
}

/// Serialises a record into its stored bytes (JSON envelope at the current version).
pub(crate) fn encode(record: &ResourceRecord) -> Result<Vec<u8>, StateError> {
    serde_json::to_vec(&EnvelopeOut {
        format_version: RECORD_FORMAT_VERSION,
        record,
    })
    .map_err(|source| StateError::Encode {
        address: record.address.clone(),
        source,
    })
}

/// A change ready to store: address and encoded record, or `None` to delete.
pub(crate) type EncodedChange = (String, Option<Vec<u8>>);

/// Validates and encodes a whole commit before anything is written, so that a bad change aborts
/// the commit with nothing applied.
pub(crate) fn encode_changes(changes: &[Change]) -> Result<Vec<EncodedChange>, StateError> {
    changes
        .iter()
        .map(|c| match c {
            Change::Put(r) => {
                check_new_address(&r.address)?;
                Ok((r.address.clone(), Some(encode(r)?)))
            }
            Change::Delete(a) => {
                check_new_address(a)?;
                Ok((a.clone(), None))
            }
        })
        .collect()
}

fn check_new_address(address: &str) -> Result<(), StateError> {
    if address.is_empty() {
        return Err(StateError::InvalidChange {
            detail: "a record address is empty".to_string(),
        });
    }
    Ok(())
}

/// Decodes stored bytes found under `address` in the state described by `backend`
/// (e.g. "sled state at .prov/state"), upgrading older formats.
pub(crate) fn decode(
    backend: &str,
    address: &str,
    raw: &[u8],
) -> Result<ResourceRecord, StateError> {
    // Fast path: current version, decoded straight into the struct without an intermediate Value
    // tree; this is what keeps a 10,000-record snapshot cheap.
    if let Ok(env) = serde_json::from_slice::<EnvelopeIn<ResourceRecord>>(raw) {
        if env.format_version == RECORD_FORMAT_VERSION {
            return check_address(backend, address, env.record);
        }
    }
    let env: EnvelopeIn<Value> = serde_json::from_slice(raw).map_err(|e| {
        corrupt_record(
            backend,
            address,
            format!("the stored bytes are not a record envelope ({e})"),
        )
    })?;
    decode_value(backend, address, env.format_version, env.record)
}

/// Decodes many stored records (sorted by address) into a map. Decoding is the bulk of a
/// snapshot's cost (building JSON value trees), so large states are split across threads; the
/// error reported is that of the first bad record in address order, as if decoded one by one.
pub(crate) fn decode_all<B: AsRef<[u8]> + Sync>(
    backend: &str,
    raw: Vec<(String, B)>,
) -> Result<BTreeMap<String, ResourceRecord>, StateError> {
    // Below this many records per thread, spawning costs more than it saves.
    const MIN_PER_THREAD: usize = 1000;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8)
        .min(raw.len() / MIN_PER_THREAD)
        .max(1);
    let decode_chunk = |chunk: &[(String, B)]| -> Result<Vec<ResourceRecord>, StateError> {
        chunk
            .iter()
            .map(|(address, bytes)| decode(backend, address, bytes.as_ref()))
            .collect()
    };
    let decoded: Vec<ResourceRecord> = if threads == 1 {
        decode_chunk(&raw)?
    } else {
        let chunk_len = raw.len().div_ceil(threads);
        let parts = std::thread::scope(|scope| {
            let handles: Vec<_> = raw
                .chunks(chunk_len)
                .map(|chunk| scope.spawn(move || decode_chunk(chunk)))
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

/// Turns a record of an older format version into the current format. No older version exists
/// yet; when version 2 arrives, add `1 => { ...rewrite value... }` here and loop until current.
pub(crate) fn upgrade(from_version: u32, record: Value) -> Result<Value, String> {
    let _ = record;
    Err(format!(
        "record format version {from_version} was never written by any prov \
         (known versions: 1..={RECORD_FORMAT_VERSION})"
    ))
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
        }
    }

    #[test]
    fn round_trip() {
        let r = rec("server.b");
        let raw = encode(&r).unwrap();
        assert!(raw.starts_with(b"{\"format_version\":1,"));
        assert_eq!(decode("test", "server.b", &raw).unwrap(), r);
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
