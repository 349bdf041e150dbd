//! `prov drift`: what changed outside prov, as text or versioned JSON; exit 0 none, 2 drift, 1 error. Never writes the state.

use super::{runtime, CmdResult, Failure};
use crate::cli::LockArgs;
use crate::context::Context;
use crate::render::{text, Paint};
use prov_engine::drift::{Drift, DriftKind, IgnoreRule, RefreshOptions};
use prov_engine::findings::{findings, Finding, Summary};
use prov_engine::ops;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Version of the `--json` document (docs/drift-json.md).
pub const DRIFT_FORMAT_VERSION: u32 = 1;

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

    let items = findings(&report.drift, &rules, &today);
    let summary = Summary::of(&items);
    let live: Vec<&Finding> = items.iter().filter(|i| !i.is_ignored()).collect();

    if json_out {
        let v = json!({
            "format": "prov-drift",
            "format_version": DRIFT_FORMAT_VERSION,
            "workspace": report.workspace,
            "checked_at": prov_state::format_utc(now),
            "checked": report.checked,
            "drift": summary.drifted(),
            "summary": {
                "gone": summary.gone, "changed": summary.changed, "stopped": summary.stopped,
                "version": summary.version, "unmanaged": summary.unmanaged, "errors": summary.errors,
                "ignored": summary.ignored, "expired": summary.expired,
            },
            "items": items.iter().map(item_json).collect::<Vec<_>>(),
        });
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        let paint = Paint { on: ctx.color };
        let shown: Vec<Drift> = live.iter().map(|i| i.narrowed()).collect();
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
        let ignored: Vec<&Finding> = items.iter().filter(|i| i.ignored.is_some()).collect();
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
    Ok(summary.exit_code())
}

fn count_addresses(d: &[Drift]) -> usize {
    d.iter()
        .map(|x| &x.address)
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

fn item_json(i: &Finding) -> Value {
    let mut v = json!({ "address": i.drift.address, "status": i.status() });
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
