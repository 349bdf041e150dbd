//! Which fields of the evaluated configuration the schema's defaults filled in (the user did not write them).
//!
//! Nickel keeps each field's merge priority in the evaluated value: a field the workspace
//! wrote has the neutral priority (it beat the contract's `| default = …`), a field only the
//! contract's default provided keeps the bottom priority. Plans use this to leave such fields
//! out of a create's listing (`on_error = "Stop"`, `max_retries = 0`, a cluster's `features`),
//! so a reviewer reads what the configuration says. Only the places that become resources'
//! attributes are walked: taskservs, clusters and cluster components.

use std::collections::BTreeSet;

use nickel_lang_core::eval::value::{Container, NickelValue};
use nickel_lang_core::term::record::RecordData;
use nickel_lang_core::term::MergePriority;

/// Dotted paths of defaulted fields: `servers.S.taskservs.T.on_error`, `clusters.C.features`,
/// `clusters.C.components.NAME.config`. Below a defaulted field nothing more is listed.
pub(crate) fn collect(value: &NickelValue) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Some(root) = record(value) else {
        return out;
    };
    for (sid, server) in entries(root, "servers") {
        let Some(server) = server.and_then(record) else {
            continue;
        };
        for (tid, ts) in entries(server, "taskservs") {
            if let Some(ts) = ts.and_then(record) {
                let prefix = format!("servers.{sid}.taskservs.{tid}");
                walk(
                    ts,
                    &prefix,
                    &["implementation", "depends_on", "lifecycle", "sensitive"],
                    &mut out,
                );
            }
        }
    }
    for (cid, cluster) in entries(root, "clusters") {
        let Some(cluster) = cluster.and_then(record) else {
            continue;
        };
        let prefix = format!("clusters.{cid}");
        walk(
            cluster,
            &prefix,
            &["components", "depends_on", "lifecycle", "implementation"],
            &mut out,
        );
        let Some(Container::Alloc(components)) =
            field(cluster, "components").and_then(|c| c.as_array())
        else {
            continue;
        };
        for c in components.array.iter() {
            let Some(c) = record(c) else { continue };
            let Some(name) = field(c, "name").and_then(|v| v.as_string()) else {
                continue;
            };
            walk(
                c,
                &format!("{prefix}.components.{}", name.as_str()),
                &[],
                &mut out,
            );
        }
    }
    out
}

fn walk(r: &RecordData, prefix: &str, skip: &[&str], out: &mut BTreeSet<String>) {
    for (id, f) in &r.fields {
        let name = id.label();
        if skip.contains(&name) {
            continue;
        }
        let path = format!("{prefix}.{name}");
        if matches!(f.metadata.priority(), MergePriority::Bottom) {
            out.insert(path);
        } else if let Some(inner) = f.value.as_ref().and_then(record) {
            walk(inner, &path, &[], out);
        }
    }
}

fn entries<'a>(
    r: &'a RecordData,
    name: &str,
) -> impl Iterator<Item = (&'a str, Option<&'a NickelValue>)> + 'a {
    field(r, name)
        .and_then(record)
        .into_iter()
        .flat_map(|s| s.fields.iter().map(|(k, f)| (k.label(), f.value.as_ref())))
}

fn record(value: &NickelValue) -> Option<&RecordData> {
    match value.as_record()? {
        Container::Alloc(r) => Some(r),
        Container::Empty => None,
    }
}

fn field<'a>(r: &'a RecordData, name: &str) -> Option<&'a NickelValue> {
    r.fields
        .iter()
        .find(|(k, _)| k.label() == name)
        .and_then(|(_, f)| f.value.as_ref())
}
