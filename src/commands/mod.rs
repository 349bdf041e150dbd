//! One module per command; `run` dispatches and turns errors into exit codes.

mod apply;
mod cluster;
mod drift;
mod extension;
mod graph;
mod import;
mod live;
mod output;
mod plan;
mod policy;
mod refresh;
mod show;
mod sim;
mod state;
mod taskserv;
mod validate;

use crate::cli::Command;
use crate::context::Context;

/// Exit code 1 with a message: every error path of every command ends here.
pub struct Failure(pub String);

impl<E: std::fmt::Display + 'static> From<E> for Failure {
    fn from(e: E) -> Failure {
        match (&e as &dyn std::any::Any).downcast_ref::<prov_engine::error::EngineError>() {
            Some(engine) => Failure(crate::render::engine_error(engine)),
            None => Failure(e.to_string()),
        }
    }
}

pub type CmdResult = Result<u8, Failure>;

/// A tokio runtime for commands that talk to implementations.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure(format!("starting the async runtime: {e}")))
}

/// Prints `v` as pretty JSON (the `--json` of the query commands).
pub fn json<T: serde::Serialize>(v: &T) -> CmdResult {
    crate::outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(0)
}

/// A read-only query over recorded resources: loads the workspace, opens its state without a
/// lock and runs `f` on both.
pub fn query<T>(
    ctx: &Context,
    lock: &crate::cli::LockArgs,
    op: &str,
    f: impl FnOnce(
        &prov_engine::workspace::Loaded,
        &dyn prov_state::StateRead,
    ) -> Result<T, prov_engine::error::EngineError>,
) -> Result<T, Failure> {
    let ws = ctx.workspace(None)?;
    let (loaded, state) =
        ctx.load_with_state(&ws, op, lock.lock_timeout, crate::context::Access::Read)?;
    Ok(f(&loaded, &*state.store)?)
}

pub fn run(ctx: &Context, cmd: Command) -> u8 {
    let code = match dispatch(ctx, cmd) {
        Ok(code) => code,
        Err(Failure(msg)) => {
            crate::errln!("{}", crate::render::error_text(&msg, ctx.color));
            if ctx.json_errors {
                crate::outln!("{}", crate::render::json_error(&msg));
            }
            1
        }
    };
    // A reader that went away is not an error; losing output any other way is.
    match crate::out::finish() {
        Some(e) if code != 1 => {
            let msg = format!("writing to stdout: {e}");
            crate::errln!("{}", crate::render::error_text(&msg, ctx.color));
            1
        }
        _ => code,
    }
}

/// Runs the command's module.
fn dispatch(ctx: &Context, cmd: Command) -> CmdResult {
    match cmd {
        Command::Validate { dir, json } => validate::run(ctx, dir.as_deref(), json),
        Command::Plan {
            dir,
            plan,
            out,
            detailed_exitcode,
            report,
            untrusted,
            lock,
        } => plan::run(
            ctx,
            dir.as_deref(),
            &plan,
            out.as_deref(),
            detailed_exitcode,
            &report,
            untrusted,
            &lock,
        ),
        Command::Apply {
            target,
            plan,
            auto_approve,
            parallelism,
            json,
            expect_plan,
            lock,
        } => apply::run(
            ctx,
            target.as_deref(),
            &plan,
            apply::Approval {
                auto_approve,
                expect_plan: expect_plan.as_deref(),
            },
            parallelism,
            json,
            &lock,
        ),
        Command::Destroy {
            dir,
            targets,
            auto_approve,
            parallelism,
            json,
            no_cost,
            lock,
        } => {
            let plan = destroy_plan(targets, no_cost);
            apply::run(
                ctx,
                dir.as_deref(),
                &plan,
                apply::Approval {
                    auto_approve,
                    expect_plan: None,
                },
                parallelism,
                json,
                &lock,
            )
        }
        Command::Show { plan, report } => show::run(ctx, plan.as_deref(), &report),
        Command::Graph { dir } => graph::run(ctx, dir.as_deref()),
        Command::State { command } => state::run(ctx, command),
        Command::Output { name, json } => output::run(ctx, name.as_deref(), json),
        Command::Sim { command } => sim::run(ctx, command),
        Command::Server { command } => live::server(ctx, command),
        Command::Provider { command } => live::provider(ctx, command),
        Command::Drift {
            dir,
            json,
            ignore,
            refresh_parallelism,
            call_timeout,
            lock,
        } => drift::run(
            ctx,
            dir.as_deref(),
            json,
            ignore.as_deref(),
            refresh_parallelism,
            call_timeout,
            &lock,
        ),
        Command::Refresh { dir, lock } => refresh::run(ctx, dir.as_deref(), &lock),
        Command::Import {
            address,
            id,
            dir,
            force,
            lock,
        } => import::run(ctx, &address, &id, dir.as_deref(), force, &lock),
        Command::ForceUnlock { lock_id } => state::force_unlock(ctx, &lock_id),
        Command::Taskserv { command } => taskserv::run(ctx, command),
        Command::Cluster { command } => cluster::run(ctx, command),
        Command::Policy { command } => policy::run(ctx, command),
        Command::Extension { command } => extension::run(ctx, command),
    }
}

/// `prov destroy`'s plan: every resource (or the targets) destroyed, after a full refresh.
fn destroy_plan(targets: Vec<String>, no_cost: bool) -> crate::cli::PlanArgs {
    crate::cli::PlanArgs {
        no_cost,
        refresh: crate::cli::Refresh::All,
        refresh_only: false,
        refresh_parallelism: 32,
        expect_no_changes: false,
        destroy: true,
        targets,
        adopt: false,
        ignore_tagged: false,
        replace: Vec::new(),
    }
}
