//! Which workspace owns an object at a provider: the one place that computes the identity prov
//! tags objects with (`prov:workspace`) and decides whether a tagged object is this workspace's.
//!
//! The identity is the state's lineage: a random 128-bit id fixed when the state is created,
//! stored with it by every backend (sled, PostgreSQL, memory), kept by `state pull`/`push` of the
//! same lineage and taken over, with the records, by a forced push of another lineage. So a
//! renamed directory or a second checkout sharing a PostgreSQL state is the same workspace, and
//! two unrelated workspaces that happen to share a directory name are not.
//!
//! Older prov versions tagged with the directory's basename. Such an object is this workspace's
//! only when a record of this state names it (its `prov:address` tag and provider id match the
//! record): a basename alone never adopts anything.

use crate::registry::Bound;
use crate::traits::{Ownership, ServerInfo};
use prov_state::{ResourceRecord, Snapshot, StateMeta};
use std::collections::BTreeMap;

/// The `prov:workspace` tag value of the workspace whose state has `meta`: computed here and
/// nowhere else.
pub fn workspace_id(meta: &StateMeta) -> String {
    meta.lineage.clone()
}

/// This workspace as its objects' tags name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The `prov:workspace` tag value: the state's lineage ("" while no state exists: then
    /// nothing is ours by tag).
    pub id: String,
    /// The directory's name: the tag older prov versions wrote (see the module docs).
    pub legacy_name: String,
}

/// Whose an object is, by its tags and this state's records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Claim {
    /// Tagged with this workspace's identity, or with the old directory-name tag and named by a
    /// record of this state.
    Ours,
    /// Tagged by another workspace, or by this one before its state was lost (the tag value).
    Other(String),
    /// No `prov:workspace` tag: not created by prov.
    Untagged,
}

impl Identity {
    /// The identity of the workspace whose state has `meta`.
    pub fn of(meta: &StateMeta, bound: &Bound) -> Identity {
        Identity {
            id: workspace_id(meta),
            legacy_name: bound.workspace_name.clone(),
        }
    }

    /// The tags a server created at `address` gets.
    pub fn ownership(&self, address: &str) -> Ownership {
        Ownership {
            workspace: self.id.clone(),
            address: address.to_string(),
        }
    }

    /// Whether `info` is the object a create at `address` by this workspace made (what an
    /// interrupted create is adopted by). The identity only: a pending create has no record.
    pub fn created(&self, info: &ServerInfo, address: &str) -> bool {
        !self.id.is_empty()
            && tag(info, Ownership::TAG_WORKSPACE) == Some(self.id.as_str())
            && tag(info, Ownership::TAG_ADDRESS) == Some(address)
    }

    /// Whose `info` is, given the records of this state (by address).
    pub fn claim(&self, info: &ServerInfo, records: &BTreeMap<String, ResourceRecord>) -> Claim {
        match tag(info, Ownership::TAG_WORKSPACE) {
            None => Claim::Untagged,
            Some(w) if !self.id.is_empty() && w == self.id => Claim::Ours,
            Some(w) if w == self.legacy_name && recorded(info, records) => Claim::Ours,
            Some(w) => Claim::Other(w.to_string()),
        }
    }
}

/// A record names this object at the address its `prov:address` tag says.
fn recorded(info: &ServerInfo, records: &BTreeMap<String, ResourceRecord>) -> bool {
    tag(info, Ownership::TAG_ADDRESS)
        .and_then(|a| records.get(a))
        .is_some_and(|r| r.provider_id.as_deref() == Some(info.id.as_str()))
}

fn tag<'a>(info: &'a ServerInfo, key: &str) -> Option<&'a str> {
    info.tags.get(key).map(String::as_str)
}

/// A live server whose `prov:address` tag names an address the plan would create, that no
/// record of the state holds: creating the address would duplicate it.
#[derive(Clone, Debug, PartialEq)]
pub struct TaggedServer {
    pub address: String,
    pub provider: String,
    pub id: String,
    pub hostname: String,
    /// Its `prov:workspace` tag value.
    pub workspace_tag: String,
    /// Tagged with this workspace's identity (else: another workspace or a lost state).
    pub ours: bool,
    /// What the provider reported.
    pub info: ServerInfo,
}

/// Every object id the state holds: each record's current object and its deposed ones (every
/// plan destroys those, so they are the state's too).
pub fn known_ids(snap: &Snapshot) -> std::collections::BTreeSet<&str> {
    snap.resources
        .values()
        .flat_map(|r| {
            r.provider_id
                .as_deref()
                .into_iter()
                .chain(r.deposed.iter().map(|d| d.provider_id.as_str()))
        })
        .collect()
}

/// The live servers tagged for `creates` (address → provider) that no record in `snap` holds.
/// One list-servers call per provider involved, all at once.
pub async fn tagged_for(
    creates: &BTreeMap<String, String>,
    snap: &Snapshot,
    bound: &Bound,
) -> Result<Vec<TaggedServer>, crate::error::EngineError> {
    TaggedQuery::of(creates.clone(), snap, bound)
        .ask(bound)
        .await
}

/// [`tagged_for`] with what it needs of the state taken first, so that the snapshot can move on
/// (a plan refreshes it) while the providers are asked.
pub struct TaggedQuery {
    creates: BTreeMap<String, String>,
    me: Identity,
    known: std::collections::BTreeSet<String>,
}

impl TaggedQuery {
    pub fn of(creates: BTreeMap<String, String>, snap: &Snapshot, bound: &Bound) -> TaggedQuery {
        let known = if creates.is_empty() {
            Default::default()
        } else {
            known_ids(snap).into_iter().map(str::to_string).collect()
        };
        TaggedQuery {
            creates,
            me: Identity::of(&snap.meta, bound),
            known,
        }
    }

    /// Asks every provider involved for its servers, at once.
    pub async fn ask(&self, bound: &Bound) -> Result<Vec<TaggedServer>, crate::error::EngineError> {
        let mut providers: Vec<&String> = self.creates.values().collect();
        providers.sort();
        providers.dedup();
        let mut lists = tokio::task::JoinSet::new();
        for name in providers {
            let (p, name) = (bound.provider(name)?, name.clone());
            lists.spawn(async move { p.list_servers().await.map(|l| (name, l)) });
        }
        let mut out = Vec::new();
        while let Some(listed) = lists.join_next().await {
            let (name, servers) = listed
                .map_err(|e| crate::error::EngineError::Internal(format!("list-servers: {e}")))??;
            out.extend(servers.iter().filter_map(|s| self.unrecorded(&name, s)));
        }
        out.sort_by(|a, b| (&a.address, &a.id).cmp(&(&b.address, &b.id)));
        Ok(out)
    }

    /// `s`, listed by provider `name`, when it is tagged for an address created at `name` and
    /// no record holds it.
    fn unrecorded(&self, name: &String, s: &ServerInfo) -> Option<TaggedServer> {
        let w = tag(s, Ownership::TAG_WORKSPACE)?;
        let a = tag(s, Ownership::TAG_ADDRESS)?;
        if self.creates.get(a) != Some(name) || self.known.contains(s.id.as_str()) {
            return None;
        }
        Some(TaggedServer {
            address: a.to_string(),
            provider: name.clone(),
            id: s.id.clone(),
            hostname: s.hostname.clone(),
            workspace_tag: w.to_string(),
            ours: !self.me.id.is_empty() && w == self.me.id,
            info: s.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn server(id: &str, workspace: Option<&str>, address: &str) -> ServerInfo {
        let mut tags = json!({ "prov:address": address });
        if let Some(w) = workspace {
            tags["prov:workspace"] = json!(w);
        }
        serde_json::from_value(json!({
            "id": id, "hostname": "web", "status": "running", "plan": "small", "zone": "z",
            "os": "debian", "tags": tags,
        }))
        .unwrap()
    }

    fn records(address: &str, id: &str) -> BTreeMap<String, ResourceRecord> {
        let r: ResourceRecord = serde_json::from_value(json!({
            "address": address, "kind": "server", "implementation": "sim", "provider_id": id,
            "config": {}, "attributes": {}, "outputs": {}, "dependencies": [], "updated_at": 0,
            "sensitive_paths": [],
        }))
        .unwrap();
        BTreeMap::from([(address.to_string(), r)])
    }

    #[test]
    fn identity_adopts_and_the_directory_name_only_with_a_record() {
        let me = Identity {
            id: "lineage-a".into(),
            legacy_name: "infra".into(),
        };
        let none = BTreeMap::new();
        let ours = server("s1", Some("lineage-a"), "server.web");
        assert!(me.created(&ours, "server.web"));
        assert!(!me.created(&ours, "server.db"));
        assert_eq!(me.claim(&ours, &none), Claim::Ours);
        // Another workspace of the same directory name, or an older prov's tag with no record.
        let legacy = server("s2", Some("infra"), "server.web");
        assert!(!me.created(&legacy, "server.web"));
        assert_eq!(me.claim(&legacy, &none), Claim::Other("infra".into()));
        assert_eq!(
            me.claim(&legacy, &records("server.web", "s9")),
            Claim::Other("infra".into())
        );
        assert_eq!(
            me.claim(&legacy, &records("server.db", "s2")),
            Claim::Other("infra".into())
        );
        // The old tag and a record naming this id at its tagged address: ours.
        assert_eq!(me.claim(&legacy, &records("server.web", "s2")), Claim::Ours);
        assert_eq!(
            me.claim(&server("s3", Some("lineage-b"), "server.web"), &none),
            Claim::Other("lineage-b".into())
        );
        assert_eq!(
            me.claim(&server("s4", None, "server.web"), &none),
            Claim::Untagged
        );
        // No state yet: nothing is ours by an empty tag.
        let fresh = Identity {
            id: String::new(),
            legacy_name: "infra".into(),
        };
        assert!(!fresh.created(&server("s5", Some(""), "server.web"), "server.web"));
        assert_eq!(
            fresh.claim(&server("s5", Some(""), "server.web"), &none),
            Claim::Other(String::new())
        );
    }
}
