//! `prov-bench-nickel-phases DIR [--no-contract | --prov] [OUT.json]`: a workspace's Nickel evaluation
//! split into Nickel's own phases, each timed in-process (parse of `main.ncl`; stdlib load and
//! typecheck; compilation to the runtime representation; contract application + deep evaluation;
//! export checks; conversion to serde_json), so the largest can be attacked. It uses
//! nickel-lang-core directly, with the same program set-up as `prov_engine::config` (import path
//! `.prov/lib`, the `Workspace` contract unless `--no-contract`). The workspace must have been
//! evaluated by prov once (the library is written out then). Prints the table; writes JSON too
//! when OUT.json is given. `--prov` times prov's own steps instead, for a plain-data `main.ncl`
//! (read without Nickel: library write-out, pre-scan, reader, Rust contract check, positions,
//! hash).

/// The same global allocator as the `prov` binary (src/main.rs).
#[global_allocator]
static GLOBAL: prov::alloc::Allocator = prov::alloc::Allocator;

use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::parser::ErrorTolerantParser;
use nickel_lang_core::program::{Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};
use nickel_lang_core::typecheck::TypecheckMode;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

fn rss_mib(key: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let contract = !args.iter().any(|a| a == "--no-contract");
    let pos: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let Some(dir) = pos.first().map(PathBuf::from) else {
        eprintln!("usage: prov-bench-nickel-phases DIR [--no-contract] [OUT.json]");
        std::process::exit(2);
    };
    let out = pos.get(1).map(PathBuf::from);
    if args.iter().any(|a| a == "--prov") {
        // prov's own steps for a plain-data workspace (no Nickel).
        let laps = prov_engine::config::plain_data_phases(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("not plain data the Rust check accepts"));
        let mut total = 0.0;
        for (name, d) in laps {
            let ms = d.as_secs_f64() * 1000.0;
            total += ms;
            println!("{name:<42} {ms:>9.1} ms");
        }
        println!("{:<42} {total:>9.1} ms  peak {:>6.0} MiB", "total", rss_mib("VmHWM:"));
        return;
    }
    // Nickel needs a deep stack (as in prov_engine::config::eval).
    let rows = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || run(dir, contract))
        .expect("thread")
        .join()
        .expect("evaluation panicked");
    let mut total = 0.0;
    for (name, ms, rss) in &rows {
        if !name.starts_with('(') {
            total += ms;
        }
        println!("{name:<42} {ms:>9.1} ms  RSS {rss:>6.0} MiB");
    }
    println!("{:<42} {total:>9.1} ms  peak {:>6.0} MiB", "total", rss_mib("VmHWM:"));
    if let Some(out) = out {
        let j: Vec<_> = rows
            .iter()
            .map(|(n, ms, rss)| json!({"phase": n, "ms": ms, "rss_mib": rss}))
            .collect();
        std::fs::write(out, json!({"contract": contract, "phases": j}).to_string())
            .expect("write OUT.json");
    }
}

type Rows = Vec<(String, f64, f64)>;

/// Records the time since `t` under `name` and restarts `t`.
fn lap(rows: &mut Rows, t: &mut Instant, name: &str) {
    rows.push((name.to_owned(), t.elapsed().as_secs_f64() * 1000.0, rss_mib("VmRSS:")));
    *t = Instant::now();
}

fn run(dir: PathBuf, contract: bool) -> Rows {
    let mut rows = Vec::new();
    let mut t = Instant::now();
    // Parsing alone, on the side (`Program::parse` panics in 0.19): the typecheck step below
    // parses again, and its row is shown less this parse.
    let source = std::fs::read_to_string(dir.join("main.ncl")).expect("read main.ncl");
    let parse_ms = {
        let mut files = nickel_lang_core::files::Files::empty();
        let id = files.add("main.ncl", source.as_str());
        let alloc = nickel_lang_core::ast::AstAlloc::new();
        let t = Instant::now();
        let ast = nickel_lang_core::parser::grammar::TermParser::new()
            .parse_strict(&alloc, id, nickel_lang_core::parser::lexer::Lexer::new(&source))
            .unwrap_or_else(|_| panic!("parse failed"));
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        std::mem::forget(ast);
        std::mem::forget(alloc);
        ms
    };
    rows.push(("parse main.ncl (on the side)".into(), parse_ms, rss_mib("VmRSS:")));
    t = Instant::now();
    let lib = dir.join(".prov/lib");
    let contracts: Vec<PathBuf> = if contract {
        vec![lib.join("prov/workspace.ncl")]
    } else {
        vec![]
    };
    let mut program: Program<CacheImpl> = ProgramBuilder::new()
        .add_path(dir.join("main.ncl"))
        .add_import_paths([lib])
        .add_contract_paths(contracts.iter())
        .build()
        .unwrap_or_else(|e| panic!("build: {e}"));
    lap(&mut rows, &mut t, "read sources");
    program
        .typecheck(TypecheckMode::Walk)
        .unwrap_or_else(|_| panic!("typecheck failed"));
    rows.push((
        "parse stdlib + typecheck (walk), less the parse".into(),
        t.elapsed().as_secs_f64() * 1000.0 - parse_ms,
        rss_mib("VmRSS:"),
    ));
    t = Instant::now();
    program.compile().unwrap_or_else(|_| panic!("compile failed"));
    lap(&mut rows, &mut t, "compile to runtime terms");
    let value = program
        .eval_full_for_export()
        .unwrap_or_else(|_| panic!("evaluation failed"));
    let name = if contract {
        "imports + contract + deep evaluation"
    } else {
        "imports + deep evaluation"
    };
    lap(&mut rows, &mut t, name);
    serialize::validate(ExportFormat::Json, &value).unwrap_or_else(|_| panic!("validate"));
    lap(&mut rows, &mut t, "export validation");
    let json = serde_json::to_value(&value).expect("to_value");
    lap(&mut rows, &mut t, "to serde_json::Value");
    let text = serde_json::to_string(&json).expect("to_string");
    t = Instant::now();
    let parsed: serde_json::Value = serde_json::from_str(&text).expect("parse");
    lap(&mut rows, &mut t, "(for scale: serde_json parse of the result)");
    std::mem::forget(parsed);
    std::mem::forget(json);
    std::mem::forget(value);
    std::mem::forget(program);
    rows
}
