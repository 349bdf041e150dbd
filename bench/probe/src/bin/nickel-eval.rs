//! `prov-bench-nickel-eval DIR OUT.json`: evaluates the workspace DIR exactly as prov does
//! (`prov_engine::config::evaluate`: schema library, pre-scan, Nickel parse + typecheck +
//! `Workspace` contract + deep evaluation + JSON export) and writes to OUT.json the time it took,
//! plus, for scale, the time serde_json takes to parse the resulting JSON.

/// The same global allocator as the `prov` binary (src/main.rs).
#[global_allocator]
static GLOBAL: prov::alloc::Allocator = prov::alloc::Allocator;

use std::path::Path;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: prov-bench-nickel-eval DIR OUT.json");
        std::process::exit(2);
    }
    let opts = prov_engine::config::EvalOptions::default();
    let t = Instant::now();
    let evaluated = match prov_engine::config::evaluate(Path::new(&args[1]), &opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let eval_ms = t.elapsed().as_secs_f64() * 1000.0;
    let servers = evaluated.value["servers"].as_object().map_or(0, |m| m.len());

    let text = serde_json::to_string(&evaluated.value).expect("serialise");
    // For comparing evaluations (e.g. with PROV_NICKEL_CONTRACT=1): value, defaults, positions.
    if let Some(dump) = std::env::var_os("PROV_BENCH_DUMP") {
        let all = serde_json::json!({
            "value": &evaluated.value,
            "defaults": &evaluated.defaults,
            "positions": &evaluated.positions,
            "hash": &evaluated.hash,
        });
        std::fs::write(dump, all.to_string()).expect("write PROV_BENCH_DUMP");
    }
    let t = Instant::now();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("parse");
    let json_parse_ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(parsed, evaluated.value);

    let out = serde_json::json!({
        "eval_ms": eval_ms,
        "json_parse_ms": json_parse_ms,
        "json_bytes": text.len(),
        "servers": servers,
    });
    std::fs::write(&args[2], out.to_string()).expect("write OUT.json");
    // Like prov at exit: no drop of the large values.
    std::mem::forget(parsed);
    std::mem::forget(evaluated);
}
