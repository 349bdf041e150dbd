//! `prov drift`: what changed outside prov, as text or versioned JSON; exit 0 none, 2 drift, 1 error. Never writes the state.

use super::{runtime, CmdResult, Failure};
use crate::cli::LockArgs;
use crate::context::Context;
use crate::render::{text, Paint};
use prov_engine::drift::{rule_for, Drift, DriftKind, IgnoreRule, RefreshOptions};
use prov_engine::ops;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Version of the `--json` document (docs/drift-json.md).
pub const DRIFT_FORMAT_VERSION: u32 = 1;

/// One reportable finding: a drift narrowed to one attribute where it has several.
struct Item<'a> {
    drift: &'a Drift,
    attribute: Option<String>,
    ignored: Option<(&'a IgnoreRule, bool)>,
}

fn status(k: &DriftKind) -> &'static str {
    match k {
        DriftKind::Gone => "gone",
        DriftKind::Changed(_) => "changed",
        DriftKind::Stopped => "stopped",
        DriftKind::Version { .. } => "version",
        DriftKind::Unmanaged { .. } => "unmanaged",
        DriftKind::Error(_) => "error",
    }
}

#[allow(clippy::too_many_arguments)]
pub fn run(
    ctx: &Context,
    dir: Option<&Path>,
    json_out: bool,
    ignore: Option<&Path>,
    parallelism: usize,
    call_timeout: Duration,
    lock: &LockArgs,
) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let rules: Vec<IgnoreRule> = match ignore {
        None => Vec::new(),
        Some(p) => {
            let path = ctx.base.join(p);
            let bytes = std::fs::read(&path)
                .map_err(|e| Failure(format!("reading ignore file {}: {e}", path.display())))?;
            prov_engine::drift::parse_ignore(&bytes, &path.display().to_string())?
        }
    };
    // Read-only: a missing state stays missing, and nothing below writes.
    let (loaded, state) = ctx.load_with_state(
        &ws,
        "drift",
        lock.lock_timeout,
        crate::context::Access::Read,
    )?;
    let opts = RefreshOptions {
        parallelism,
        timeout: call_timeout,
    };
    let report = runtime()?.block_on(ops::drift(&loaded, &*state.store, &opts))?;
    if let Some(p) = ignore {
        let recorded = state.store.snapshot_without_configs()?.resources;
        prov_engine::drift::check_ignore_addresses(
            &rules,
            &ctx.base.join(p).display().to_string(),
            |a| {
                recorded.contains_key(a)
                    || report.drift.iter().any(|d| d.address == a)
                    || a.parse::<prov_engine::model::Address>()
                        .is_ok_and(|x| loaded.model.resources.contains_key(&x))
            },
        )?;
    }
    let now = prov_state::now_secs();
    let today = prov_state::format_utc(now)[..10].to_string();

    let mut items = Vec::new();
    for d in &report.drift {
        match &d.kind {
            DriftKind::Changed(diffs) => {
                for x in diffs {
                    items.push(Item {
                        drift: d,
                        attribute: Some(x.path.clone()),
                        ignored: rule_for(&rules, d, Some(&x.path), &today),
                    })
                }
            }
            _ => items.push(Item {
                drift: d,
                attribute: None,
                ignored: rule_for(&rules, d, None, &today),
            }),
        }
    }
    let counts = |s: &str| {
        items
            .iter()
            .filter(|i| status(&i.drift.kind) == s && !is_ignored(i))
            .count()
    };
    let live: Vec<&Item> = items.iter().filter(|i| !is_ignored(i)).collect();
    let errors = counts("error");
    let drifted = live.iter().any(|i| status(&i.drift.kind) != "error");

    if json_out {
        let v = json!({
            "format": "prov-drift",
            "format_version": DRIFT_FORMAT_VERSION,
            "workspace": report.workspace,
            "checked_at": prov_state::format_utc(now),
            "checked": report.checked,
            "drift": drifted,
            "summary": {
                "gone": counts("gone"), "changed": counts("changed"), "stopped": counts("stopped"),
                "version": counts("version"), "unmanaged": counts("unmanaged"), "errors": errors,
                "ignored": items.iter().filter(|i| is_ignored(i)).count(),
                "expired": items.iter().filter(|i| i.ignored.is_some_and(|(_, e)| e)).count(),
            },
            "items": items.iter().map(item_json).collect::<Vec<_>>(),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let paint = Paint { on: ctx.color };
        let shown: Vec<Drift> = live.iter().map(|i| narrowed(i)).collect();
        if shown.is_empty() {
            crate::outln!(
                "No drift: {} recorded resources match the real world.",
                report.checked
            );
        } else {
            crate::outln!(
                "Drift in {} of {} recorded resources:",
                count_addresses(&shown),
                report.checked
            );
            crate::out!("{}", text::drift(&shown, paint));
        }
        let ignored: Vec<&Item> = items.iter().filter(|i| i.ignored.is_some()).collect();
        if !ignored.is_empty() {
            crate::outln!("\nAcknowledged drift:");
            for i in ignored {
                let (r, expired) = i.ignored.expect("filtered");
                let what = i
                    .attribute
                    .as_deref()
                    .map(|a| format!(" {a}"))
                    .unwrap_or_default();
                let until = r
                    .expires
                    .as_deref()
                    .map(|e| format!(" (until {e})"))
                    .unwrap_or_default();
                let state = if expired {
                    "EXPIRED, counted again"
                } else {
                    "ignored"
                };
                crate::outln!("  {}{what}: {state}: {}{until}", i.drift.address, r.reason);
            }
        }
    }
    Ok(if errors > 0 {
        1
    } else if drifted {
        2
    } else {
        0
    })
}

fn is_ignored(i: &Item) -> bool {
    matches!(i.ignored, Some((_, false)))
}

fn count_addresses(d: &[Drift]) -> usize {
    d.iter()
        .map(|x| &x.address)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// The drift of one item: a change narrowed to its attribute.
fn narrowed(i: &Item) -> Drift {
    match (&i.drift.kind, &i.attribute) {
        (DriftKind::Changed(diffs), Some(a)) => Drift {
            address: i.drift.address.clone(),
            kind: DriftKind::Changed(diffs.iter().filter(|x| &x.path == a).cloned().collect()),
        },
        _ => i.drift.clone(),
    }
}

fn item_json(i: &Item) -> Value {
    let mut v = json!({ "address": i.drift.address, "status": status(&i.drift.kind) });
    match &i.drift.kind {
        DriftKind::Changed(diffs) => {
            if let Some(x) = diffs.iter().find(|x| Some(&x.path) == i.attribute.as_ref()) {
                v["attribute"] = json!(x.path);
                v["recorded"] = x.before.clone().unwrap_or(Value::Null);
                v["real"] = x.after.clone().unwrap_or(Value::Null);
            }
        }
        DriftKind::Version { recorded, real } => {
            v["recorded"] = json!(recorded);
            v["real"] = json!(real);
        }
        DriftKind::Unmanaged {
            provider,
            id,
            hostname,
        } => {
            v["provider"] = json!(provider);
            v["id"] = json!(id);
            v["hostname"] = json!(hostname);
        }
        DriftKind::Error(m) => v["message"] = json!(m),
        DriftKind::Gone | DriftKind::Stopped => {}
    }
    v["ignored"] = match i.ignored {
        Some((r, expired)) => json!({"reason": r.reason, "expires": r.expires, "expired": expired}),
        None => Value::Null,
    };
    v
}
