//! `prov-bench-phases DIR OUT.json`: what `prov plan DIR` does, through the same public
//! functions in the same order (`ops::load` and `ops::plan` unrolled: evaluate, model, graph,
//! open the state, snapshot, resolve pending operations, refresh, diff, render, the drops),
//! timing each phase and reading the process's RSS and peak RSS after it (/proc/self/status).
//! The plan options come from parsing `prov plan DIR` with the CLI's own grammar, so its defaults
//! (refresh on) apply. Writes JSON to OUT.json.
//!
//! It mirrors `engine/src/ops.rs` and `src/commands/plan.rs` as of the commit it was last
//! adjusted to; when their API changes it stops compiling and bench/run reports the phases as
//! unavailable (the other measurements are unaffected).

/// The same global allocator as the `prov` binary (src/main.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use prov::cli::{Cli, Command};
use prov::context::Context;
use prov::render::{text, Paint};
use prov_engine::config;
use prov_engine::drift::{self, RefreshOptions};
use prov_engine::graph::Graph;
use prov_engine::load::build_model_from;
use prov_engine::plan::make::{make_plan_from, PlanOptions};
use prov_engine::refresh;
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
        refresh: a.refresh,
        refresh_only: a.refresh_only,
        refresh_opts: RefreshOptions {
            parallelism: a.refresh_parallelism,
            ..Default::default()
        },
        destroy: a.destroy,
        targets: Vec::new(),
        replace: Vec::new(),
    };
    let ctx = Context::new(&cli.global).unwrap_or_else(|e| die("context", e));
    let ws = ctx
        .workspace(dir.as_deref())
        .unwrap_or_else(|e| die("workspace", e));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die("runtime", e));

    // ops::load, unrolled.
    let mut evaluated = p
        .run("evaluate (Nickel or its cache)", || {
            config::evaluate(&ws.dir, &ctx.eval_options())
        })
        .unwrap_or_else(|e| die("evaluate", e));
    let bound = p.run("bind registry", || {
        let providers = evaluated
            .value
            .get("providers")
            .and_then(|v| v.as_object())
            .cloned()
            .unwrap_or_default();
        Arc::new(ctx.registry.bind(ws.dir.clone(), &providers))
    });
    let model = p
        .run("build model", || {
            build_model_from(&mut evaluated.value, &evaluated.positions, &bound)
        })
        .unwrap_or_else(|e| die("model", format!("{e:?}")));
    let graph = p
        .run("build graph", || Graph::build(&model))
        .unwrap_or_else(|e| die("graph", format!("{e:?}")));
    // The hash comes with the evaluation (kept in the cache with the value).
    let hash = evaluated.hash.clone();
    let state = p
        .run("open state", || {
            ctx.open_state(&ws, Some(&evaluated.value), "plan", Duration::ZERO, false)
        })
        .unwrap_or_else(|e| die("open state", e));

    // ops::plan, unrolled.
    let snap = p
        .run("read state snapshot", || state.store.snapshot())
        .unwrap_or_else(|e| die("snapshot", e));
    let resolutions = p
        .run("resolve pending operations", || {
            rt.block_on(refresh::resolve_pending(&snap, &bound))
        })
        .unwrap_or_else(|e| die("pending", e));
    let mut view = p.run("resolved view", || refresh::resolved_view(snap, &resolutions));
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
            make_plan_from(&model, &graph, view, &bound, &opts, &hash)
        })
        .unwrap_or_else(|e| die("plan", e));
    let rendered = p.run("render plan text", || text::plan(&plan, Paint { on: false }));
    let changes = plan.has_changes();
    // Timed for information: `prov plan` forgets these instead (a process exit frees them).
    p.run("drop plan, model, config (prov plan skips)", move || {
        drop(rendered);
        drop(plan);
        drop(graph);
        drop(model);
        drop(evaluated);
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
