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
    let mut resolver = Resolver {
        snap,
        bound,
        me: crate::ownership::Identity::of(&snap.meta, bound),
        listed: BTreeMap::new(),
    };
    let mut out = Vec::new();
    for p in snap.pending.values() {
        let (outcome, note) = resolver.resolve(p).await?;
        out.push(Resolution {
            pending: p.clone(),
            outcome,
            note,
        });
    }
    Ok(out)
}

/// What resolving a snapshot's pending operations asks with, and what it has asked already.
struct Resolver<'s> {
    snap: &'s Snapshot,
    bound: &'s Bound,
    /// Whose servers are ours (their ownership tags).
    me: crate::ownership::Identity,
    /// Servers are listed once per provider, not once per pending create.
    listed: BTreeMap<String, Vec<ServerInfo>>,
}

/// The note of an operation that found nothing done: the next plan decides again.
fn not_completed(op: &str) -> String {
    format!("{op} did not complete; the next plan decides again")
}

impl<'s> Resolver<'s> {
    /// The outcome of one pending operation, and what was found.
    async fn resolve(&mut self, p: &PendingOp) -> Result<(Outcome, String), EngineError> {
        let addr: Address = p
            .address
            .parse()
            .map_err(|e: String| EngineError::Internal(format!("pending operation: {e}")))?;
        let record = self.snap.resources.get(&p.address);
        let (mut outcome, note) = match (&addr, p.operation.as_str()) {
            (Address::Server(_), "create") => self.server_create(p, record).await?,
            (Address::Server(_), "delete") => self.server_delete(p, record).await?,
            (Address::Taskserv(..), op) => self.taskserv(p, &addr, op, record).await?,
            (Address::Cluster(_) | Address::Component(..), op) => {
                match (op, self.cluster_present(p, &addr, record).await?) {
                    ("create", true) => (
                        Outcome::Adopt(Box::new(adopted(p, None, json!({})))),
                        "the create went through".into(),
                    ),
                    ("delete", false) if record.is_some() => {
                        (Outcome::DeleteRecord, "the delete went through".into())
                    }
                    _ => (Outcome::Clear, not_completed(op)),
                }
            }
            (_, op) => (Outcome::Clear, not_completed(op)),
        };
        if let (Outcome::Adopt(rec), Some(r)) = (&mut outcome, record) {
            // A protection recorded for the address stays with whatever holds it.
            rec.protected |= r.protected;
        }
        Ok((outcome, note))
    }

    /// A server create: adopted when a server carrying the address's ownership tags exists
    /// that the record does not already name, else it never happened.
    async fn server_create(
        &mut self,
        p: &PendingOp,
        record: Option<&ResourceRecord>,
    ) -> Result<(Outcome, String), EngineError> {
        if !self.listed.contains_key(&p.implementation) {
            let prov = self.bound.provider(&p.implementation)?;
            self.listed
                .insert(p.implementation.clone(), prov.list_servers().await?);
        }
        let known = |id: &str| {
            record.is_some_and(|r| {
                r.provider_id.as_deref() == Some(id)
                    || r.deposed.iter().any(|d| d.provider_id == id)
            })
        };
        let found: Vec<&ServerInfo> = self.listed[&p.implementation]
            .iter()
            .filter(|i| self.me.created(i, &p.address))
            .filter(|i| !known(&i.id))
            .collect();
        let Some((info, extra)) = found.split_first() else {
            return Ok((
                Outcome::Clear,
                "the create never happened: no server carries its ownership tag".into(),
            ));
        };
        let mut rec = adopted(p, Some(info.id.clone()), server_outputs(info));
        // The object the record names (a create_before_destroy replace) and any other server
        // carrying this address's ownership tags (earlier interrupted creates) are deposed:
        // the plan destroys them.
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
        Ok((Outcome::Adopt(Box::new(rec)), note))
    }

    /// A server delete: of a deposed object (gone: the record forgets it), or of the object
    /// the record names or no record does (then finished at apply).
    async fn server_delete(
        &self,
        p: &PendingOp,
        record: Option<&ResourceRecord>,
    ) -> Result<(Outcome, String), EngineError> {
        let id = p.provider_id.clone().unwrap_or_default();
        let prov = self.bound.provider(&p.implementation)?;
        let exists = prov.get_server_info(&id).await?.is_some();
        let recorded = record.and_then(|r| r.provider_id.as_deref()) == Some(id.as_str());
        let deposed = record.filter(|r| r.deposed.iter().any(|d| d.provider_id == id));
        if let Some(r) = deposed {
            if exists {
                return Ok((
                    Outcome::Clear,
                    format!("the delete of deposed {id} never finished: the plan destroys it"),
                ));
            }
            let mut r = r.clone();
            r.deposed.retain(|d| d.provider_id != id);
            return Ok((
                Outcome::DeposedGone(Box::new(r)),
                format!("the delete went through: deposed {id} is gone"),
            ));
        }
        Ok(match (exists, recorded) {
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
        })
    }

    /// A taskserv install or uninstall, decided by its status on its server.
    async fn taskserv(
        &self,
        p: &PendingOp,
        addr: &Address,
        op: &str,
        record: Option<&ResourceRecord>,
    ) -> Result<(Outcome, String), EngineError> {
        let server = addr.parent().expect("taskserv has a server");
        let Some(target) = server_target(&server, self.snap, self.bound)? else {
            return Ok((Outcome::Clear, format!("{server} is not in the state")));
        };
        let t = self.bound.taskserv(&p.implementation)?;
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
        Ok(match (op, installed) {
            ("create", true) => {
                let s = st.expect("installed");
                let status = if s.running { "running" } else { "stopped" };
                let outputs = json!({"version": s.version, "status": status});
                (
                    Outcome::Adopt(Box::new(adopted(p, None, outputs))),
                    "the install went through".into(),
                )
            }
            ("delete", false) if record.is_some() => {
                (Outcome::DeleteRecord, "the uninstall went through".into())
            }
            _ => (Outcome::Clear, not_completed(op)),
        })
    }

    /// Whether the cluster or component exists, by its status.
    async fn cluster_present(
        &self,
        p: &PendingOp,
        addr: &Address,
        record: Option<&ResourceRecord>,
    ) -> Result<bool, EngineError> {
        let cl = self.bound.cluster(&p.implementation)?;
        let present = if let Address::Cluster(_) = addr {
            let attrs = p
                .spec
                .get("attributes")
                .cloned()
                .or_else(|| record.map(|r| r.attributes.clone()))
                .unwrap_or(Value::Null);
            let req = cluster_request(addr, &attrs, self.snap, self.bound)?;
            cl.status(&req).await.map(|_| true)
        } else {
            let parent = addr.parent().expect("component has a cluster");
            let Some(crec) = self.snap.resources.get(&parent.to_string()) else {
                return Ok(false);
            };
            let req = ComponentRequest {
                address: p.address.clone(),
                cluster: cluster_request(&parent, &crec.attributes, self.snap, self.bound)?,
                name: addr.name().to_string(),
                config: p.spec.get("attributes").cloned().unwrap_or(Value::Null),
            };
            cl.component_status(&req).await.map(|s| s.is_some())
        };
        match present {
            Ok(present) => Ok(present),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}
