//! Builds the requests extensions act on (a server with its provider, a cluster with its servers) from state records.

use crate::model::Address;
use crate::plan::make::referable;
use crate::registry::Bound;
use crate::traits::{ClusterRequest, ServerTarget};
use prov_state::ResourceRecord;
use serde_json::Value;

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
