//! Reads the real world, never changing it: resolves operations a crashed apply left pending (adopt what was created, clear what was not).

use crate::error::EngineError;
use crate::model::Address;
use crate::records::{self, server_outputs};
use crate::registry::Bound;
use crate::traits::{
    ClusterRequest, ComponentRequest, ErrorKind, ExtError, ServerInfo, ServerTarget,
    TaskservRequest,
};
use prov_state::{Change, PendingOp, ResourceRecord, Snapshot};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// What to do about one interrupted operation, decided by asking its implementation.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The create went through: record the object found.
    Adopt(Box<ResourceRecord>),
    /// The create never happened, or the update's record stands: drop the pending note.
    Clear,
    /// The delete went through: drop the record too.
    DeleteRecord,
    /// A server prov was deleting still exists and no record refers to it: delete it (at apply).
    FinishDelete { provider_id: String },
    /// A deposed object prov was deleting is gone: the record (given, without it) forgets it.
    DeposedGone(Box<ResourceRecord>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Resolution {
    pub pending: PendingOp,
    pub outcome: Outcome,
    /// What was found, for the report ("found sim-3a… running", "not found").
    pub note: String,
}

impl Resolution {
    pub fn address(&self) -> &str {
        &self.pending.address
    }
}

/// The state changes that record these resolutions (FinishDelete keeps its pending note until
/// the delete is done).
pub fn changes(res: &[Resolution]) -> Vec<Change> {
    let mut out = Vec::new();
    for r in res {
        match &r.outcome {
            Outcome::Adopt(rec) | Outcome::DeposedGone(rec) => {
                out.push(Change::Put((**rec).clone()));
                out.push(Change::ClearPending(r.pending.address.clone()));
            }
            Outcome::Clear => out.push(Change::ClearPending(r.pending.address.clone())),
            Outcome::DeleteRecord => {
                out.push(Change::Delete(r.pending.address.clone()));
                out.push(Change::ClearPending(r.pending.address.clone()));
            }
            Outcome::FinishDelete { .. } => {}
        }
    }
    out
}

/// The snapshot as it will be once the resolutions are recorded: what `plan` diffs against, so
/// an adopted server is not planned as a create.
pub fn resolved_view(snap: Snapshot, res: &[Resolution]) -> Snapshot {
    let mut s = snap;
    for r in res {
        let a = &r.pending.address;
        match &r.outcome {
            Outcome::Adopt(rec) | Outcome::DeposedGone(rec) => {
                s.resources.insert(a.clone(), (**rec).clone());
                s.pending.remove(a);
            }
            Outcome::Clear => {
                s.pending.remove(a);
            }
            Outcome::DeleteRecord => {
                s.resources.remove(a);
                s.pending.remove(a);
            }
            Outcome::FinishDelete { .. } => {}
        }
    }
    s
}

/// The record an adopted object gets: the requested attributes, the outputs found.
fn adopted(p: &PendingOp, provider_id: Option<String>, outputs: Value) -> ResourceRecord {
    ResourceRecord {
        address: p.address.clone(),
        kind: p.kind.clone(),
        implementation: p.implementation.clone(),
        provider_id,
        config: p.spec.get("config").cloned().unwrap_or(Value::Null),
        attributes: p.spec.get("attributes").cloned().unwrap_or(Value::Null),
        outputs,
        dependencies: p.dependencies.clone(),
        updated_at: prov_state::now_secs(),
        // Recorded with the pending note (notes written before they carried it have none).
        sensitive_paths: p
            .spec
            .get("sensitive")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default(),
        ..Default::default()
    }
}

fn server_target(
    addr: &Address,
    snap: &Snapshot,
    bound: &Bound,
) -> Result<Option<ServerTarget>, ExtError> {
    match snap.resources.get(&addr.to_string()) {
        None => Ok(None),
        Some(r) => records::server_target(addr, Some(r), bound)
            .map(Some)
            .map_err(|e| not_found(addr, e)),
    }
}

fn cluster_request(
    addr: &Address,
    attrs: &Value,
    snap: &Snapshot,
    bound: &Bound,
) -> Result<ClusterRequest, ExtError> {
    records::cluster_request(addr, attrs, |a| snap.resources.get(&a.to_string()), bound)
        .map_err(|e| not_found(addr, e))
}

fn not_found(addr: &Address, message: String) -> ExtError {
    ExtError::new(
        "prov",
        "refresh",
        Some(&addr.to_string()),
        ErrorKind::NotFound,
        message,
    )
}

/// Asks the implementations about every pending operation. Read-only: nothing is written here.
pub async fn resolve_pending(
    snap: &Snapshot,
    bound: &Bound,
) -> Result<Vec<Resolution>, EngineError> {
    let mut out = Vec::new();
    // Servers are listed once per provider, not once per pending create.
    let mut listed: BTreeMap<String, Vec<ServerInfo>> = BTreeMap::new();
    let me = crate::ownership::Identity::of(&snap.meta, bound);
    for p in snap.pending.values() {
        let addr: Address = p
            .address
            .parse()
            .map_err(|e: String| EngineError::Internal(format!("pending operation: {e}")))?;
        let record = snap.resources.get(&p.address);
        let (outcome, note) = match (&addr, p.operation.as_str()) {
            (Address::Server(_), "create") => {
                if !listed.contains_key(&p.implementation) {
                    let prov = bound.provider(&p.implementation)?;
                    listed.insert(p.implementation.clone(), prov.list_servers().await?);
                }
                let known = |id: &str| {
                    record.is_some_and(|r| {
                        r.provider_id.as_deref() == Some(id)
                            || r.deposed.iter().any(|d| d.provider_id == id)
                    })
                };
                let found: Vec<&ServerInfo> = listed[&p.implementation]
                    .iter()
                    .filter(|i| me.created(i, &p.address))
                    .filter(|i| !known(&i.id))
                    .collect();
                match found.split_first() {
                    Some((info, extra)) => {
                        let mut rec = adopted(p, Some(info.id.clone()), server_outputs(info));
                        // The object the record names (a create_before_destroy replace) and
                        // any other server carrying this address's ownership tags (earlier
                        // interrupted creates) are deposed: the plan destroys them.
                        if let Some(r) = record {
                            rec.deposed = r.deposed.clone();
                            rec.protected = r.protected;
                            rec.deposed.extend(r.as_deposed(prov_state::now_secs()));
                        }
                        for other in extra {
                            rec.deposed.push(prov_state::Deposed {
                                provider_id: other.id.clone(),
                                attributes: rec.attributes.clone(),
                                outputs: server_outputs(other),
                                since: prov_state::now_secs(),
                            });
                        }
                        let mut note = format!(
                            "the create went through: found {} ({:?})",
                            info.id, info.status
                        );
                        if !extra.is_empty() {
                            let ids: Vec<&str> = extra.iter().map(|i| i.id.as_str()).collect();
                            note.push_str(&format!(
                                "; {} more carry its ownership tags and will be destroyed as deposed: {}",
                                extra.len(),
                                ids.join(", ")
                            ));
                        }
                        (Outcome::Adopt(Box::new(rec)), note)
                    }
                    None => (
                        Outcome::Clear,
                        "the create never happened: no server carries its ownership tag".into(),
                    ),
                }
            }
            (Address::Server(_), "delete") => {
                let id = p.provider_id.clone().unwrap_or_default();
                let prov = bound.provider(&p.implementation)?;
                let exists = prov.get_server_info(&id).await?.is_some();
                let recorded = record.and_then(|r| r.provider_id.as_deref()) == Some(id.as_str());
                let deposed = record.filter(|r| r.deposed.iter().any(|d| d.provider_id == id));
                if let Some(r) = deposed {
                    let (outcome, note) = if exists {
                        (
                            Outcome::Clear,
                            format!(
                                "the delete of deposed {id} never finished: the plan destroys it"
                            ),
                        )
                    } else {
                        let mut r = r.clone();
                        r.deposed.retain(|d| d.provider_id != id);
                        (
                            Outcome::DeposedGone(Box::new(r)),
                            format!("the delete went through: deposed {id} is gone"),
                        )
                    };
                    out.push(Resolution {
                        pending: p.clone(),
                        outcome,
                        note,
                    });
                    continue;
                }
                match (exists, recorded) {
                    (false, true) => (
                        Outcome::DeleteRecord,
                        format!("the delete went through: {id} is gone"),
                    ),
                    (false, false) => (Outcome::Clear, format!("{id} is gone")),
                    (true, true) => (
                        Outcome::Clear,
                        format!("the delete never happened: {id} still exists"),
                    ),
                    (true, false) => (
                        Outcome::FinishDelete {
                            provider_id: id.clone(),
                        },
                        format!("{id} still exists and no record refers to it: apply deletes it"),
                    ),
                }
            }
            (Address::Taskserv(..), op) => {
                let server = addr.parent().expect("taskserv has a server");
                match server_target(&server, snap, bound)? {
                    None => (Outcome::Clear, format!("{server} is not in the state")),
                    Some(target) => {
                        let t = bound.taskserv(&p.implementation)?;
                        let attrs = p.spec.get("attributes").cloned().unwrap_or(Value::Null);
                        let req = TaskservRequest::from_attributes(
                            p.address.clone(),
                            addr.name().to_string(),
                            &attrs,
                            target,
                        );
                        let st = match t.status(&req).await {
                            Ok(s) => Some(s),
                            Err(e) if e.kind == ErrorKind::NotFound => None,
                            Err(e) => return Err(e.into()),
                        };
                        let installed = st.as_ref().is_some_and(|s| s.installed);
                        match (op, installed) {
                            ("create", true) => {
                                let s = st.expect("installed");
                                let outputs = json!({"version": s.version, "status": if s.running { "running" } else { "stopped" }});
                                (
                                    Outcome::Adopt(Box::new(adopted(p, None, outputs))),
                                    "the install went through".into(),
                                )
                            }
                            ("delete", false) if record.is_some() => {
                                (Outcome::DeleteRecord, "the uninstall went through".into())
                            }
                            _ => (
                                Outcome::Clear,
                                format!("{op} did not complete; the next plan decides again"),
                            ),
                        }
                    }
                }
            }
            (Address::Cluster(_) | Address::Component(..), op) => {
                let cl = bound.cluster(&p.implementation)?;
                let present = match &addr {
                    Address::Cluster(_) => {
                        let attrs = p
                            .spec
                            .get("attributes")
                            .cloned()
                            .or_else(|| record.map(|r| r.attributes.clone()))
                            .unwrap_or(Value::Null);
                        let req = cluster_request(&addr, &attrs, snap, bound)?;
                        match cl.status(&req).await {
                            Ok(_) => true,
                            Err(e) if e.kind == ErrorKind::NotFound => false,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    _ => {
                        let parent = addr.parent().expect("component has a cluster");
                        match snap.resources.get(&parent.to_string()) {
                            None => false,
                            Some(crec) => {
                                let req = ComponentRequest {
                                    address: p.address.clone(),
                                    cluster: cluster_request(
                                        &parent,
                                        &crec.attributes,
                                        snap,
                                        bound,
                                    )?,
                                    name: addr.name().to_string(),
                                    config: p
                                        .spec
                                        .get("attributes")
                                        .cloned()
                                        .unwrap_or(Value::Null),
                                };
                                match cl.component_status(&req).await {
                                    Ok(s) => s.is_some(),
                                    Err(e) if e.kind == ErrorKind::NotFound => false,
                                    Err(e) => return Err(e.into()),
                                }
                            }
                        }
                    }
                };
                match (op, present) {
                    ("create", true) => (
                        Outcome::Adopt(Box::new(adopted(p, None, json!({})))),
                        "the create went through".into(),
                    ),
                    ("delete", false) if record.is_some() => {
                        (Outcome::DeleteRecord, "the delete went through".into())
                    }
                    _ => (
                        Outcome::Clear,
                        format!("{op} did not complete; the next plan decides again"),
                    ),
                }
            }
            (_, op) => (
                Outcome::Clear,
                format!("{op} did not complete; the next plan decides again"),
            ),
        };
        let mut outcome = outcome;
        if let (Outcome::Adopt(rec), Some(r)) = (&mut outcome, record) {
            // A protection recorded for the address stays with whatever holds it.
            rec.protected |= r.protected;
        }
        out.push(Resolution {
            pending: p.clone(),
            outcome,
            note,
        });
    }
    Ok(out)
}
