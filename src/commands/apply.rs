//! `prov apply` and `prov destroy`: apply a saved plan, or plan the workspace, ask, and apply.

use super::{runtime, CmdResult, Failure};
use crate::cli::{LockArgs, PlanArgs};
use crate::context::Context;
use crate::render::{progress, text, Paint};
use prov_engine::apply::ApplyOptions;
use prov_engine::ops;
use prov_engine::plan::file as planfile;
use prov_engine::plan::Plan;
use prov_state::StateStore;
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

pub fn run(
    ctx: &Context,
    target: Option<&Path>,
    args: &PlanArgs,
    auto_approve: bool,
    parallelism: usize,
    json: bool,
    lock: &LockArgs,
) -> CmdResult {
    let paint = Paint { on: ctx.color };
    let apply_opts = ApplyOptions {
        parallelism,
        ..ApplyOptions::default()
    };
    let saved = target.map(|t| ctx.base.join(t)).filter(|p| p.is_file());
    if let Some(path) = saved {
        if args.destroy || !args.targets.is_empty() || !args.replace.is_empty() {
            return Err(Failure("--destroy, --target and --replace cannot be combined with a saved plan: they were fixed when it was made".into()));
        }
        let plan = planfile::read(&path)?;
        let ws = ctx.workspace(None)?;
        let store = ctx.open_state(&ws, "apply", lock.lock_timeout, true)?;
        let bound = ops::bind_for_plan(&ws, &ctx.registry, &plan);
        return execute(
            &plan,
            Some(&path),
            bound,
            Arc::new(store),
            &apply_opts,
            json,
            paint,
        );
    }
    let ws = ctx.workspace(target)?;
    let opts = super::plan::options(args)?;
    let loaded = ops::load(&ws, &ctx.registry, &ctx.eval_options())?;
    let store = ctx.open_state(
        &ws,
        if args.destroy { "destroy" } else { "apply" },
        lock.lock_timeout,
        true,
    )?;
    let plan = ops::plan(&loaded, &store, &opts)?;
    if !json {
        print!("{}", text::plan(&plan, paint));
    }
    if !plan.has_changes() {
        return Ok(0);
    }
    if !auto_approve && !confirm(&plan)? {
        println!("Apply cancelled; nothing was changed.");
        return Ok(1);
    }
    execute(
        &plan,
        None,
        loaded.bound.clone(),
        Arc::new(store),
        &apply_opts,
        json,
        paint,
    )
}

fn confirm(plan: &Plan) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure("apply needs confirmation, but stdin is not a terminal: pass --auto-approve, or apply a saved plan (`prov plan --out FILE`, then `prov apply FILE`)".into()));
    }
    let s = plan.summary();
    print!(
        "\nDo you want to perform these actions ({} to add, {} to change, {} to replace, {} to destroy)?\n  Only 'yes' will be accepted: ",
        s.add, s.change, s.replace, s.destroy
    );
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

fn execute(
    plan: &Plan,
    plan_path: Option<&Path>,
    bound: Arc<prov_engine::registry::Bound>,
    store: Arc<dyn StateStore>,
    opts: &ApplyOptions,
    json: bool,
    paint: Paint,
) -> CmdResult {
    let rt = runtime()?;
    let sink = progress::sink(json, paint);
    rt.spawn(on_signals(opts.interrupt.clone()));
    let report = rt.block_on(ops::apply(plan, plan_path, bound, store, opts, sink))?;
    if !json {
        print!("\n{}", progress::summary(&report, paint));
    }
    Ok(if report.ok() { 0 } else { 1 })
}

/// First SIGINT/SIGTERM: start nothing new, let running steps finish and be recorded. Second: exit.
async fn on_signals(flag: Arc<std::sync::atomic::AtomicBool>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return;
    };
    for n in 0.. {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        if n > 0 {
            eprintln!("Second interrupt: exiting now. Steps that were running may be unrecorded.");
            std::process::exit(130);
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        eprintln!("Interrupt received: starting nothing new, waiting for running steps to finish and be recorded (interrupt again to exit now).");
    }
}
