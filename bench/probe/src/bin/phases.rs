//! `prov-bench-phases DIR OUT.json`: what `prov plan DIR` does, through the same public
//! functions in the same order (`workspace::load_with_state` and `ops::plan_from` unrolled: evaluate;
//! model and graph while the state is opened and its snapshot read on a second thread; resolve
//! pending operations, refresh, diff, render, the drops),
//! timing each phase and reading the process's RSS and peak RSS after it (/proc/self/status).
//! The plan options come from parsing `prov plan DIR` with the CLI's own grammar, so its defaults
//! (refresh on) apply. Writes JSON to OUT.json.
//!
//! It mirrors `engine/src/ops.rs` and `src/commands/plan.rs` as of the commit it was last
//! adjusted to; when their API changes it stops compiling and bench/run reports the phases as
//! unavailable (the other measurements are unaffected).

/// The same global allocator as the `prov` binary (src/main.rs).
#[global_allocator]
static GLOBAL: prov::alloc::Allocator = prov::alloc::Allocator;

use clap::Parser;
use prov::cli::{Cli, Command};
use prov::context::Context;
use prov::render::{text, Paint};
use prov_engine::config;
use prov_engine::drift::{self, RefreshOptions};
use prov_engine::ops;
use prov_engine::pending;
use prov_engine::plan::make::{make_plan_from, PlanOptions};
use prov_engine::workspace;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn status_kb(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
}

struct Phases {
    start: Instant,
    rows: Vec<Value>,
}

impl Phases {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        self.rows.push(json!({
            "phase": name,
            "ms": ms,
            "rss_mib": status_kb("VmRSS:") / 1024.0,
            "peak_mib": status_kb("VmHWM:") / 1024.0,
        }));
        out
    }
}

fn die(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("{what}: {e}");
    std::process::exit(1);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: prov-bench-phases DIR OUT.json");
        std::process::exit(2);
    }
    let mut p = Phases {
        start: Instant::now(),
        rows: Vec::new(),
    };
    let cli = Cli::try_parse_from(["prov", "--no-color", "plan", args[1].as_str()])
        .unwrap_or_else(|e| die("cli", e));
    let Command::Plan { dir, plan: a, .. } = &cli.command else {
        die("cli", "not a plan command")
    };
    let opts = PlanOptions {
        refresh: a.refresh.enabled(),
        refresh_changed: a.refresh == prov::cli::Refresh::Changed,
        refresh_only: a.refresh_only,
        refresh_opts: RefreshOptions {
            parallelism: a.refresh_parallelism,
            ..Default::default()
        },
        destroy: a.destroy,
        targets: Vec::new(),
        replace: Vec::new(),
        adopt: false,
        cost: !a.no_cost,
        untrusted: false,
    };
    let ctx = Context::new(&cli.global).unwrap_or_else(|e| die("context", e));
    let ws = ctx
        .workspace(dir.as_deref())
        .unwrap_or_else(|e| die("workspace", e));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die("runtime", e));

    // workspace::load_with_state, unrolled: the evaluation, then the model and graph built while the
    // state is opened and its snapshot read on a second thread.
    let evaluated = p
        .run("evaluate (Nickel or its cache)", || {
            config::evaluate(&ws.dir, &ctx.eval_options())
        })
        .unwrap_or_else(|e| die("evaluate", e));
    let registry = ctx.registry(&ws).unwrap_or_else(|e| die("registry", e));
    let workspace::LoadedWithState {
        loaded,
        state,
        started: snap,
    } = p
        .run("model + graph ∥ open state + snapshot", || {
            workspace::build_with_state(
                &ws,
                &registry,
                evaluated,
                |config| {
                    ctx.open_state(
                        &ws,
                        Some(config),
                        "plan",
                        Duration::ZERO,
                        prov::context::Access::Read,
                    )
                    .map_err(prov_engine::error::EngineError::StateOpen)
                },
                // The snapshot kept: the refresh is timed below, after the model.
                |_, _, snapshot| Ok(snapshot),
            )
        })
        .unwrap_or_else(|e| die("load", e));
    let bound = loaded.bound.clone();
    let hash = loaded.config_hash.clone();

    // ops::plan_from, unrolled.
    let resolutions = p
        .run("resolve pending operations", || {
            rt.block_on(pending::resolve_pending(&snap, &bound))
        })
        .unwrap_or_else(|e| die("pending", e));
    let mut view = p.run("resolved view", || {
        pending::resolved_view(snap, &resolutions)
    });
    if opts.refresh || opts.refresh_only {
        let shared = Arc::new(view);
        let obs = p.run("refresh (provider reads)", || {
            rt.block_on(drift::observe(
                shared.clone(),
                &bound,
                &opts.refresh_opts,
                None,
            ))
        });
        view = p.run("refreshed view", || {
            let unshared = Arc::try_unwrap(shared).unwrap_or_else(|a| (*a).clone());
            let _found = drift::collect(&obs, Vec::new());
            drift::refreshed_view(unshared, &obs)
        });
        std::mem::forget(obs);
    }
    let plan = p
        .run("make plan (diff)", || {
            make_plan_from(&loaded.model, &loaded.graph, view, &bound, &opts, &hash)
        })
        .unwrap_or_else(|e| die("plan", e));
    let rendered = p.run("render plan text", || {
        text::plan(&plan, Paint { on: false })
    });
    let changes = plan.has_changes();
    // Timed for information: `prov plan` forgets these instead (a process exit frees them).
    p.run("drop plan, model, config (prov plan skips)", move || {
        drop(rendered);
        drop(plan);
        drop(loaded);
    });
    p.run("close state", move || drop(state));
    let total_ms = p.start.elapsed().as_secs_f64() * 1000.0;
    let out = json!({
        "phases": p.rows,
        "total_ms": total_ms,
        "has_changes": changes,
        "peak_mib": status_kb("VmHWM:") / 1024.0,
    });
    std::fs::write(&args[2], out.to_string()).expect("write OUT.json");
}
