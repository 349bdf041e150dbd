//! `prov plan`: evaluate, diff against the state, print (text or Terraform-shaped JSON), optionally save.

use super::CmdResult;
use crate::cli::{LockArgs, PlanArgs};
use crate::context::Context;
use crate::render::{text, tfjson, Paint};
use prov_engine::model::Address;
use prov_engine::ops;
use prov_engine::plan::file as planfile;
use prov_engine::plan::make::PlanOptions;
use std::path::Path;

/// Turns the plan flags into engine options, validating each address.
pub fn options(a: &PlanArgs) -> Result<PlanOptions, super::Failure> {
    let parse = |v: &[String], flag: &str| -> Result<Vec<Address>, super::Failure> {
        v.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| super::Failure(format!("{flag} {s}: {e}")))
            })
            .collect()
    };
    Ok(PlanOptions {
        refresh: a.refresh,
        refresh_only: a.refresh_only,
        refresh_opts: prov_engine::drift::RefreshOptions {
            parallelism: a.refresh_parallelism,
            ..Default::default()
        },
        destroy: a.destroy,
        targets: parse(&a.targets, "--target")?,
        replace: parse(&a.replace, "--replace")?,
        adopt: a.adopt,
    })
}

pub fn run(
    ctx: &Context,
    dir: Option<&Path>,
    args: &PlanArgs,
    out: Option<&Path>,
    detailed: bool,
    json: bool,
    lock: &LockArgs,
) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let opts = options(args)?;
    let ops::LoadedWithState {
        loaded,
        state,
        snapshot,
    } = ops::load_with_state(&ws, &ctx.registry(&ws)?, &ctx.eval_options(), |config| {
        ctx.open_state(&ws, Some(config), "plan", lock.lock_timeout, false)
            .map_err(prov_engine::error::EngineError::StateOpen)
    })?;
    let plan =
        super::runtime()?.block_on(ops::plan_from(&loaded, &*state.store, snapshot, &opts))?;
    if let Some(path) = out {
        planfile::write(&ctx.base.join(path), &plan)?;
    }
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&tfjson::plan(&plan))?);
    } else {
        crate::out!("{}", text::plan(&plan, Paint { on: ctx.color }));
        if let Some(path) = out {
            crate::outln!(
                "\nSaved the plan to {}. Apply exactly this plan with: prov apply {}",
                path.display(),
                path.display()
            );
        }
    }
    let changed = plan.has_changes();
    // Large configurations and plans are freed faster by the process exit than by destructors.
    std::mem::forget(plan);
    std::mem::forget(loaded);
    drop(state);
    if args.expect_no_changes && changed {
        return Err(super::Failure(
            "--expect-no-changes: the plan above has changes".into(),
        ));
    }
    Ok(if detailed && changed { 2 } else { 0 })
}
