//! `prov apply` and `prov destroy`: apply a saved plan, or plan the workspace, ask, and apply.

use super::{runtime, CmdResult, Failure};
use crate::cli::{LockArgs, PlanArgs};
use crate::context::{Access, Context, OpenState};
use crate::render::{progress, reviewed, text, Paint};
use prov_engine::apply::ApplyOptions;
use prov_engine::error::EngineError;
use prov_engine::events::Event;
use prov_engine::ops;
use prov_engine::plan::file as planfile;
use prov_engine::plan::review;
use prov_engine::plan::Plan;
use prov_engine::workspace::{self, Loaded, Workspace};
use std::io::{BufRead, IsTerminal};
use std::path::Path;
use std::sync::Arc;

/// What allows the apply besides a `yes`: `--auto-approve`, and the reviewed plan it must match.
pub struct Approval<'a> {
    pub auto_approve: bool,
    pub expect_plan: Option<&'a Path>,
}

/// `--expect-plan`: the reviewed plan, read before anything is planned (a file that is not one
/// fails at once).
fn read_reviewed<'a>(
    ctx: &Context,
    given: Option<&'a Path>,
) -> Result<Option<(&'a Path, review::Review)>, Failure> {
    let Some(given) = given else {
        return Ok(None);
    };
    // Named as given (not `./FILE`) in messages.
    let path = if ctx.base == Path::new(".") {
        given.to_path_buf()
    } else {
        ctx.base.join(given)
    };
    Ok(Some((given, review::read(&path, ctx.keys()?)?)))
}

/// `--expect-plan`: refuses (listing the differences) unless `plan` does exactly what the
/// reviewed plan showed.
fn check_reviewed(
    ctx: &Context,
    reviewed: &Option<(&Path, review::Review)>,
    plan: &Plan,
) -> Result<(), Failure> {
    let Some((given, review)) = reviewed else {
        return Ok(());
    };
    let keys = ctx.keys()?;
    let diffs = review::compare(review, plan, keys).map_err(|e| {
        Failure(format!(
            "cannot check the plan against the reviewed plan {}: {e}; nothing was applied",
            given.display()
        ))
    })?;
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Failure(reviewed::differences(
        &given.display().to_string(),
        &diffs,
    )))
}

/// `--json`'s events of an apply with nothing to do: it starts and finishes, as every apply does.
fn empty_apply_events(paint: Paint) {
    let sink = progress::sink(true, paint);
    sink(Event::ApplyStarted { steps: 0 });
    sink(Event::ApplyFinished {
        succeeded: 0,
        failed: 0,
        skipped: 0,
    });
}

/// Says the plan went stale (up to ten of the resources another apply changed) and is made again.
fn announce_replan(changed: &[String]) {
    let mut list = changed
        .iter()
        .take(10)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if changed.len() > 10 {
        list.push_str(&format!(" and {} more", changed.len() - 10));
    }
    crate::errln!(
        "Another apply changed what this plan changes or reads ({list}) after it was \
         made; planning again."
    );
}

pub fn run(
    ctx: &Context,
    target: Option<&Path>,
    args: &PlanArgs,
    approval: Approval,
    parallelism: usize,
    json: bool,
    lock: &LockArgs,
) -> CmdResult {
    // A plan that matches the reviewed one exactly was approved by its review, as a saved
    // plan is.
    let auto_approve = approval.auto_approve || approval.expect_plan.is_some();
    let reviewed = read_reviewed(ctx, approval.expect_plan)?;
    let runner = Runner {
        rt: runtime()?,
        parallelism,
        json,
        paint: Paint { on: ctx.color },
        lock,
        ignore_tagged: args.ignore_tagged,
    };
    let saved = target.map(|t| ctx.base.join(t)).filter(|p| p.is_file());
    if let Some(path) = saved {
        if args.destroy || args.adopt || !args.targets.is_empty() || !args.replace.is_empty() {
            return Err(Failure("--destroy, --adopt, --target and --replace cannot be combined with a saved plan: they were fixed when it was made".into()));
        }
        return apply_saved(ctx, &runner, &path, &reviewed);
    }
    let ws = ctx.workspace(target)?;
    let opts = super::plan::options(args)?;
    let operation = if args.destroy { "destroy" } else { "apply" };
    // Opens the state to write for the configuration `config`, creating it when `create`.
    let open = |config: &serde_json::Value, create: bool| {
        ctx.open_state(
            &ws,
            Some(config),
            operation,
            lock.lock_timeout,
            Access::Write { create },
        )
    };
    let first = first_plan(ctx, &ws, &runner, &opts, &open)?;
    let (mut loaded, mut state, mut planned) = (first.loaded, first.state, first.plan);
    // The plan is made without locks; applying it locks what it touches, and when another
    // apply changed one of those meanwhile the plan is stale. An approved-in-advance apply
    // (`--auto-approve`, `--expect-plan`) then plans again, after letting go of its locks (so
    // two of them never hold what the other waits for); one a person confirmed stops instead,
    // since what they approved is no longer what would run.
    for attempt in 1.. {
        let plan = match planned.take() {
            Some(plan) => plan,
            None => runner
                .rt
                .block_on(ops::plan(&loaded, &*state.store, &opts))?,
        };
        // The plan is the whole contract of the apply: the model and graph it was made from
        // are let go, freed on a thread of their own while the plan is shown, before the walk
        // allocates its records (at 100,000 servers, hundreds of megabytes; the configurations
        // the plan's changes share stay with the plan).
        // A stale plan loads the workspace again. A plan without changes applies nothing.
        if plan.has_changes() {
            release_model(&mut loaded);
        }
        if !json {
            text::write_plan(&mut crate::out::Stdout::default(), &plan, runner.paint);
        }
        check_reviewed(ctx, &reviewed, &plan)?;
        if !plan.has_changes() {
            // Consumers of the JSON lines see every apply start and finish, a no-op one too.
            if json {
                empty_apply_events(runner.paint);
            }
            return Ok(0);
        }
        if args.expect_no_changes {
            return Err(Failure(
                "--expect-no-changes: the plan above has changes; nothing was applied".into(),
            ));
        }
        // Refused before asking: the engine refuses these creates anyway (`ops::check_tagged`),
        // asking the providers again once confirmed. The plan was made just now.
        if !args.ignore_tagged && !auto_approve {
            let check = ops::check_tagged(&plan, &loaded.bound, &state.store, true);
            runner.rt.block_on(check)?;
        }
        if !auto_approve && !confirm(&plan)? {
            crate::outln!("Apply cancelled; nothing was changed.");
            return Ok(1);
        }
        let how = How {
            plan_path: None,
            // Nobody was waited for between planning and applying.
            plan_just_made: auto_approve,
            retry_stale: auto_approve && attempt < MAX_REPLANS,
        };
        match runner.execute(&plan, how, loaded.bound.clone(), &state)? {
            Executed::Done(code) => {
                // The state is closed (its locks released); the configuration and the plan are
                // freed faster by the process exit than by destructors (tens of ms at 1,000).
                drop(state);
                std::mem::forget(plan);
                std::mem::forget(loaded);
                return Ok(code);
            }
            Executed::Stale(changed) => {
                announce_replan(&changed);
                drop(state);
                loaded = reload(ctx, &ws, &loaded.config_hash)?;
                state = open(&loaded.evaluated.value, true)?;
            }
        }
    }
    unreachable!("the loop returns")
}

/// The workspace loaded, its state opened to write, and the first plan when it was made on the way.
struct FirstPlan {
    loaded: Loaded,
    state: OpenState,
    plan: Option<Plan>,
}

/// Loads the workspace and opens its state with `open` (to write). When the default sled state exists
/// and no flag or variable names another backend, the state is opened and read beside the
/// evaluation (or, when main.ncl imports or says `backend`, beside the model once the
/// configuration evaluated) and the plan's refresh and search start before the model is built,
/// as `prov plan`'s do (`workspace::load_with_state`, `ops::start_plan`). That opening creates
/// nothing, and a configuration error still wins. A state that does not exist, or cannot be
/// opened without writing (a PostgreSQL schema to upgrade), is opened again the late way:
/// created or upgraded only once the configuration is known valid, then planned.
fn first_plan(
    ctx: &Context,
    ws: &Workspace,
    runner: &Runner,
    opts: &prov_engine::plan::make::PlanOptions,
    open: &(impl Fn(&serde_json::Value, bool) -> Result<OpenState, String> + Sync),
) -> Result<FirstPlan, Failure> {
    let late = || -> Result<FirstPlan, Failure> {
        let loaded = ctx.load(ws)?;
        let state = open(&loaded.evaluated.value, true)?;
        Ok(FirstPlan {
            loaded,
            state,
            plan: None,
        })
    };
    if !ctx.may_read_state_early(ws) {
        return late();
    }
    let early = workspace::load_with_state(
        ws,
        &ctx.registry(ws)?,
        &ctx.eval_options(),
        true,
        |config| open(config, false).map_err(EngineError::StateOpen),
        |bound, state, snapshot| {
            ops::start_plan(runner.rt.handle(), bound, &*state.store, snapshot, opts)
        },
    );
    let workspace::LoadedWithState {
        loaded,
        state,
        started,
    } = match early {
        // The configuration is valid (its errors win): the late way says what is wrong with
        // the state, or opens it writing what it must.
        Err(EngineError::StateOpen(_)) => return late(),
        other => other?,
    };
    if state.store.meta()?.lineage.is_empty() {
        // The directory holds no state (empty, or removed meanwhile): it is created now that
        // the configuration is known valid, and planned the late way.
        drop((started, state));
        let state = open(&loaded.evaluated.value, true)?;
        return Ok(FirstPlan {
            loaded,
            state,
            plan: None,
        });
    }
    let plan = runner
        .rt
        .block_on(ops::plan_started(&loaded, &*state.store, started, opts))?;
    Ok(FirstPlan {
        loaded,
        state,
        plan: Some(plan),
    })
}

/// The workspace loaded again for a plan made again: the configuration this apply started
/// with, or an error when it changed on disk meanwhile (the new plan would not be of what
/// was asked for; nothing was applied).
fn reload(ctx: &Context, ws: &Workspace, config_hash: &str) -> Result<Loaded, Failure> {
    let again = ctx.load(ws)?;
    if again.config_hash != config_hash {
        return Err(Failure(
            "the configuration changed while this apply waited for another one; nothing was applied: run `prov apply` again".into(),
        ));
    }
    Ok(again)
}

/// Empties `loaded`'s resources and graph, freeing them on a thread of their own.
fn release_model(loaded: &mut Loaded) {
    let resources = std::mem::take(&mut loaded.model.resources);
    let graph = std::mem::take(&mut loaded.graph);
    let _ = std::thread::Builder::new()
        .name("prov-free".to_string())
        .spawn(move || drop((resources, graph)));
}

/// `prov apply FILE`: applies the saved plan as it is (never planned again).
fn apply_saved(
    ctx: &Context,
    runner: &Runner,
    path: &Path,
    reviewed: &Option<(&Path, review::Review)>,
) -> CmdResult {
    let plan = planfile::read(path, ctx.keys()?)?;
    check_reviewed(ctx, reviewed, &plan)?;
    let ws = ctx.workspace(None)?;
    let state = ctx.open_state_of_plan(&ws, plan.backend.as_ref(), runner.lock.lock_timeout)?;
    let bound = ops::bind_for_plan(&ws, &ctx.registry(&ws)?, &plan);
    let how = How {
        plan_path: Some(path),
        plan_just_made: false,
        retry_stale: false,
    };
    let executed = runner.execute(&plan, how, bound, &state)?;
    drop(state);
    // Freed faster by the process exit than by its destructor.
    std::mem::forget(plan);
    match executed {
        Executed::Done(code) => Ok(code),
        // Not asked for (a saved plan is never planned again): the engine's error says it.
        Executed::Stale(changed) => Err(Failure(format!(
            "saved plan {} is stale: {} changed since it was made; run `prov plan` again",
            path.display(),
            changed.join(", ")
        ))),
    }
}

/// How many times an approved-in-advance apply plans again after another apply changed what it
/// touches (each time it holds more of the locks it needs, so this settles quickly).
const MAX_REPLANS: usize = 20;

/// How `execute` ended.
enum Executed {
    Done(u8),
    /// The plan was stale: these resources changed since it was made; nothing was applied.
    Stale(Vec<String>),
}

fn confirm(plan: &Plan) -> Result<bool, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure("apply needs confirmation, but stdin is not a terminal: pass --auto-approve, or apply a saved plan (`prov plan --out FILE`, then `prov apply FILE`)".into()));
    }
    let s = plan.summary();
    crate::out!(
        "\nDo you want to perform these actions ({} to add, {} to change, {} to replace, {} to destroy)?\n  Only 'yes' will be accepted: ",
        s.add, s.change, s.replace, s.destroy
    );
    crate::out::flush();
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim() == "yes")
}

/// What every apply of this command runs with, whichever plan it applies.
struct Runner<'a> {
    rt: tokio::runtime::Runtime,
    parallelism: usize,
    json: bool,
    paint: Paint,
    lock: &'a LockArgs,
    /// `--ignore-tagged`.
    ignore_tagged: bool,
}

/// How one plan is applied.
struct How<'a> {
    /// A saved plan's file.
    plan_path: Option<&'a Path>,
    /// The plan was made just now by this command and nobody was asked since
    /// (`ApplyOptions::plan_just_made`).
    plan_just_made: bool,
    /// A stale plan is reported as `Executed::Stale` (to plan again), not as an error.
    retry_stale: bool,
}

impl Runner<'_> {
    fn execute(
        &self,
        plan: &Plan,
        how: How,
        bound: Arc<prov_engine::registry::Bound>,
        state: &OpenState,
    ) -> Result<Executed, Failure> {
        let opts = ApplyOptions {
            parallelism: self.parallelism,
            ignore_tagged: self.ignore_tagged,
            plan_just_made: how.plan_just_made,
            run_id: state.lock_id.clone(),
            lock_timeout: self.lock.lock_timeout,
            ..ApplyOptions::default()
        };
        let sink = progress::sink(self.json, self.paint);
        self.rt.spawn(on_signals(opts.interrupt.clone()));
        let report = match self.rt.block_on(ops::apply(
            plan,
            how.plan_path,
            bound,
            state.store.clone(),
            &opts,
            sink,
        )) {
            Err(EngineError::StalePlan { changed, .. }) if how.retry_stale => {
                return Ok(Executed::Stale(changed))
            }
            other => other?,
        };
        if !self.json {
            crate::out!("\n{}", progress::summary(&report, self.paint));
        }
        Ok(Executed::Done(if report.ok() { 0 } else { 1 }))
    }
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
            crate::errln!(
                "Second interrupt: exiting now. Steps that were running may be unrecorded."
            );
            std::process::exit(130);
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        crate::errln!("Interrupt received: starting nothing new, waiting for running steps to finish and be recorded (interrupt again to exit now).");
    }
}
