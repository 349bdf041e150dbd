//! `prov-bench-phases DIR OUT.json`: what `prov plan DIR` does, through the same public
//! functions in the same order (`prov_engine::ops::load` unrolled, `Context::open_state`,
//! `StateRead::snapshot`, `make_plan`, the text renderer, the drops at exit), timing each phase
//! and reading the process's RSS and peak RSS after it (/proc/self/status). Writes JSON to OUT.json.
//! It follows the CLI as of the commit it was written against; when the engine's API changes it
//! may need adjusting (bench/run then reports the phases as unavailable).

use prov::cli::Global;
use prov::context::Context;
use prov::render::{text, Paint};
use prov_engine::config;
use prov_engine::graph::Graph;
use prov_engine::load::build_model;
use prov_engine::plan::make::{make_plan, PlanOptions};
use prov_state::StateRead;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::path::Path;
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
    let ctx = Context::new(&Global {
        chdir: None,
        no_color: true,
    })
    .unwrap_or_else(|e| die("context", e));
    let ws = ctx
        .workspace(Some(Path::new(&args[1])))
        .unwrap_or_else(|e| die("workspace", e));

    // ops::load, unrolled.
    let evaluated = p
        .run("evaluate (Nickel)", || {
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
        std::sync::Arc::new(ctx.registry.bind(ws.dir.clone(), &providers))
    });
    let model = p
        .run("build model", || {
            build_model(&evaluated.value, &evaluated.positions, &bound)
        })
        .unwrap_or_else(|e| die("model", format!("{e:?}")));
    let graph = p
        .run("build graph", || Graph::build(&model))
        .unwrap_or_else(|e| die("graph", format!("{e:?}")));
    let hash = p.run("hash configuration", || {
        let bytes = serde_json::to_vec(&evaluated.value).expect("JSON");
        Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    });
    // ops::plan, unrolled.
    let store = p
        .run("open state (sled)", || {
            ctx.open_state(&ws, "plan", Duration::ZERO, false)
        })
        .unwrap_or_else(|e| die("open state", e));
    let snap = p
        .run("read state snapshot", || store.snapshot())
        .unwrap_or_else(|e| die("snapshot", e));
    let plan = p
        .run("make plan (diff)", || {
            make_plan(
                &model,
                &graph,
                &snap,
                &bound,
                &PlanOptions::default(),
                &hash,
            )
        })
        .unwrap_or_else(|e| die("plan", e));
    let rendered = p.run("render plan text", || text::plan(&plan, Paint { on: false }));
    let changes = plan.has_changes();
    p.run("drop plan, snapshot, model, config", move || {
        drop(rendered);
        drop(plan);
        drop(snap);
        drop(graph);
        drop(model);
        drop(evaluated);
    });
    p.run("close state", move || drop(store));
    let total_ms = p.start.elapsed().as_secs_f64() * 1000.0;
    let out = json!({
        "phases": p.rows,
        "total_ms": total_ms,
        "has_changes": changes,
        "peak_mib": status_kb("VmHWM:") / 1024.0,
    });
    std::fs::write(&args[2], out.to_string()).expect("write OUT.json");
}
