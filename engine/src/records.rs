//! State records as the engine reads them: parsed addresses, what `${...}` finds in a record, and the requests extensions act on (a server with its provider, a cluster with its servers).

use crate::error::{Diagnostic, EngineError};
use crate::model::Address;
use crate::refs::get_path;
use crate::registry::Bound;
use crate::traits::{ClusterRequest, ServerInfo, ServerTarget};
use prov_state::{ResourceRecord, Snapshot};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Parses the records' addresses; a record whose address does not parse is corrupt state.
pub fn parse_records(snap: &Snapshot) -> Result<BTreeMap<Address, &ResourceRecord>, EngineError> {
    let mut out = BTreeMap::new();
    for (k, r) in &snap.resources {
        out.insert(parse_address(k)?, r);
    }
    Ok(out)
}

/// A record's address; one that does not parse is corrupt state.
pub fn parse_address(k: &str) -> Result<Address, EngineError> {
    k.parse().map_err(|e: String| {
        EngineError::Invalid(vec![Diagnostic::new(
            Some(k.to_string()),
            None,
            format!("state record has an invalid address: {e}"),
        )])
    })
}

/// What `${...}` finds at `attr` in a record: its outputs first, then its attributes (the same
/// precedence as `referable`, without building the merged value on every lookup).
pub fn record_attr<'a>(rec: &'a ResourceRecord, attr: &[String]) -> Option<&'a Value> {
    get_path(&rec.outputs, attr).or_else(|| get_path(&rec.attributes, attr))
}

/// Merges recorded outputs under the attributes: what `${...}` can refer to.
pub fn referable(attributes: &Value, outputs: &Value) -> Value {
    let mut m = outputs.as_object().cloned().unwrap_or_default();
    if let Some(a) = attributes.as_object() {
        for (k, v) in a {
            m.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(m)
}

/// A server's outputs as apply records them.
pub fn server_outputs(info: &ServerInfo) -> Value {
    json!({"id": info.id, "public_ip": info.public_ip, "private_ip": info.private_ip, "extra": info.extra})
}

/// The server at `addr` as taskservs and clusters see it, from its record.
pub fn server_target(
    addr: &Address,
    rec: Option<&ResourceRecord>,
    bound: &Bound,
) -> Result<ServerTarget, String> {
    let rec = rec.ok_or_else(|| format!("{addr} is not in the state"))?;
    let provider = bound
        .provider(&rec.implementation)
        .map_err(|e| e.to_string())?;
    Ok(ServerTarget {
        address: addr.to_string(),
        provider_id: rec.provider_id.clone().unwrap_or_default(),
        hostname: rec
            .attributes
            .get("hostname")
            .and_then(Value::as_str)
            .unwrap_or(addr.name().as_str())
            .to_string(),
        facts: referable(&rec.attributes, &rec.outputs),
        provider,
    })
}

/// The cluster at `addr` with its attributes and the servers they name.
pub fn cluster_request<'a>(
    addr: &Address,
    attrs: &Value,
    lookup: impl Fn(&Address) -> Option<&'a ResourceRecord>,
    bound: &Bound,
) -> Result<ClusterRequest, String> {
    let mut servers = Vec::new();
    for s in attrs
        .get("servers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let a: Address = format!("server.{}", s.as_str().unwrap_or_default()).parse()?;
        servers.push(server_target(&a, lookup(&a), bound)?);
    }
    Ok(ClusterRequest {
        address: addr.to_string(),
        name: attrs
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or(addr.name().as_str())
            .to_string(),
        config: attrs.clone(),
        servers,
        components: Vec::new(),
    })
}
