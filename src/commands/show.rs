//! `prov show`: a saved plan (text, Markdown or Terraform-shaped JSON), or the state when no plan is given.

use super::CmdResult;
use crate::cli::{PlanFormat, ReportArgs};
use crate::context::Context;
use crate::render::{print_plan_report, tfjson, Paint};
use prov_engine::ops;
use prov_engine::plan::file as planfile;
use prov_engine::sensitive::REDACTED;
use std::path::Path;
use std::time::Duration;

pub fn run(ctx: &Context, plan: Option<&Path>, report: &ReportArgs) -> CmdResult {
    if let Some(p) = plan {
        let keys = ctx.keys()?;
        let plan = planfile::read(&ctx.base.join(p), keys)?;
        let full_plan = format!("`prov show {}`", p.display());
        print_plan_report(&plan, report, &full_plan, keys, Paint { on: ctx.color })?;
        return Ok(0);
    }
    let json = match report.format() {
        PlanFormat::Text => false,
        PlanFormat::Json => true,
        other => {
            let f = other.name();
            return Err(super::Failure(format!(
                "--format {f} shows a saved plan: prov show --format {f} PLANFILE (the state is shown as text or with --json)"
            )));
        }
    };
    let ws = ctx.workspace(None)?;
    let state = ctx.open_state(
        &ws,
        None,
        "show",
        Duration::ZERO,
        crate::context::Access::Read,
    )?;
    let snap = state.store.snapshot()?;
    if json {
        // Which outputs show a secret is the configuration's to say (all of them when it does
        // not evaluate), as for `prov output`.
        let ops::Outputs {
            values: mut outputs,
            sensitive,
            ..
        } = ops::outputs(&ws, &ctx.registry(&ws)?, &ctx.eval_options(), &*state.store)?;
        for (k, v) in outputs.iter_mut() {
            if sensitive.contains(k) {
                *v = serde_json::Value::String(REDACTED.into());
            }
        }
        let records: Vec<_> = snap
            .resources
            .values()
            .map(super::state::redacted)
            .collect();
        let sensitive: Vec<String> = sensitive.into_iter().collect();
        let v = tfjson::state(
            &snap.meta.lineage,
            snap.meta.serial,
            &records,
            &outputs,
            &sensitive,
        );
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(0);
    }
    if snap.resources.is_empty() {
        crate::outln!("The state is empty.");
    }
    for r in snap.resources.values() {
        crate::outln!(
            "{} ({}{})",
            r.address,
            r.implementation,
            r.provider_id
                .as_ref()
                .map(|i| format!(", id {i}"))
                .unwrap_or_default()
        );
        super::state::print_record_attrs(r);
    }
    Ok(0)
}
