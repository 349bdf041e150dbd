//! Data-driven plan snapshots: each `tests/snapshots/CASE/` holds `main.ncl`, optionally a prior
//! state (`prior.ncl`, applied first, and/or `state.json` records) and `args.json` (plan flags,
//! `max_bytes` for the Markdown), and the expected renderings of one plan: `plan.txt` (human
//! plan), `plan.md` (the pull-request comment), `plan.json` (Terraform-shaped
//! resource_changes), `cost.json` (prov's `cost` key of the same JSON; sim prices) and
//! `plan.html` (the HTML report, normalised: one element per line, the constant stylesheet and
//! script left out, the state's lineage and serial masked).
//! `UPDATE_SNAPSHOTS=1 cargo test --workspace --test plan_snapshots` rewrites the expectations
//! (review the diff).

use prov::render::{html, markdown, text, tfjson, Paint};
use prov_engine::apply::ApplyOptions;
use prov_engine::config::EvalOptions;
use prov_engine::events;
use prov_engine::ops;
use prov_engine::plan::make::PlanOptions;
use prov_engine::registry::Registry;
use prov_engine::workspace::{self, Workspace};
use prov_state::{Change, MemoryStore, ResourceRecord, StateWrite};
use std::path::Path;
use std::sync::Arc;

fn registry() -> Registry {
    let mut r = Registry::new();
    prov_providers::register_all(&mut r);
    prov_taskservs::register_all(&mut r);
    prov_clusters::register_all(&mut r);
    r
}

#[derive(serde::Deserialize, Default)]
struct Args {
    #[serde(default)]
    destroy: bool,
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    replace: Vec<String>,
    /// Markdown's `--max-bytes` (default: the CLI's).
    #[serde(default)]
    max_bytes: Option<usize>,
}

fn load(ws: &Workspace, reg: &Registry) -> workspace::Loaded {
    workspace::load(ws, reg, &EvalOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", ws.dir.display()))
}

fn run_case(case: &Path) -> Vec<String> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let reg = registry();
    let tmp = tempfile::tempdir().unwrap();
    let ws = Workspace::new(tmp.path().join("ws"));
    std::fs::create_dir(&ws.dir).unwrap();
    let store = Arc::new(MemoryStore::new());

    // The prior state: a prior configuration applied one step at a time (deterministic ids and
    // addresses in the sim world), then any hand-written records on top.
    if case.join("prior.ncl").exists() {
        std::fs::copy(case.join("prior.ncl"), ws.dir.join("main.ncl")).unwrap();
        let loaded = load(&ws, &reg);
        let plan = rt
            .block_on(ops::plan(&loaded, &*store, &PlanOptions::default()))
            .unwrap();
        let report = rt
            .block_on(ops::apply(
                &plan,
                None,
                loaded.bound.clone(),
                store.clone(),
                &ApplyOptions {
                    parallelism: 1,
                    ..ApplyOptions::default()
                },
                events::discard(),
            ))
            .unwrap();
        assert!(
            report.ok(),
            "prior apply of {} failed: {:?}",
            case.display(),
            report.failed
        );
    }
    if let Ok(text) = std::fs::read_to_string(case.join("state.json")) {
        let recs: Vec<ResourceRecord> = serde_json::from_str(&text).unwrap();
        store
            .commit(&recs.into_iter().map(Change::Put).collect::<Vec<_>>())
            .unwrap();
    }

    std::fs::copy(case.join("main.ncl"), ws.dir.join("main.ncl")).unwrap();
    let args: Args = std::fs::read_to_string(case.join("args.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or_default();
    let opts = PlanOptions {
        destroy: args.destroy,
        targets: args.targets.iter().map(|t| t.parse().unwrap()).collect(),
        replace: args.replace.iter().map(|t| t.parse().unwrap()).collect(),
        cost: true,
        ..PlanOptions::default()
    };
    let loaded = load(&ws, &reg);
    let plan = rt
        .block_on(ops::plan(&loaded, &*store, &opts))
        .unwrap_or_else(|e| panic!("{}: {e}", case.display()));
    let txt = text::plan(&plan, Paint { on: false });
    let md = markdown::plan(
        &plan,
        &markdown::Options {
            max_bytes: args.max_bytes.unwrap_or(markdown::DEFAULT_MAX_BYTES),
            full_plan: "`prov show plan.out`".into(),
        },
    );
    if let Some(max) = args.max_bytes {
        assert!(md.len() <= max, "{}: {} bytes", case.display(), md.len());
    }
    let full = tfjson::plan(&plan);
    let mut changes = full["resource_changes"].clone();
    stable(&mut changes);
    let json = serde_json::to_string_pretty(&changes).unwrap() + "\n";
    let cost = serde_json::to_string_pretty(&full["cost"]).unwrap() + "\n";

    // The sim provider's server ids are random: shown as `sim-ID`.
    let page = normalize_html(&html::plan(&plan));
    let (txt, md, page) = (stable_ids(&txt), stable_ids(&md), stable_ids(&page));
    let mut failures = Vec::new();
    for (file, got) in [
        ("plan.txt", txt),
        ("plan.md", md),
        ("plan.json", json),
        ("cost.json", cost),
        ("plan.html", page),
    ] {
        let path = case.join(file);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "{}: differs from {}\n--- expected\n{want}\n--- got\n{got}",
                case.display(),
                path.display()
            ));
        }
    }
    failures
}

/// `text` with every sim server id (`sim-` and 12 hex digits) replaced by `sim-ID`.
fn stable_ids(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("sim-") {
        let id = &rest[at + 4..];
        let hex = id.chars().take_while(char::is_ascii_hexdigit).count();
        out.push_str(&rest[..at + 4]);
        if hex == 12 {
            out.push_str("ID");
            rest = &id[12..];
        } else {
            rest = id;
        }
    }
    out.push_str(rest);
    out
}

/// The report as a reviewer of its structure reads it: the stylesheet and script (constants of
/// the renderer) cut out, a line break before each block element, the header's state facts
/// (random lineage, serial) masked.
fn normalize_html(page: &str) -> String {
    let cut = |s: &str, open: &str, close: &str| -> String {
        match (s.find(open), s.find(close)) {
            (Some(a), Some(b)) if a < b => format!("{}{open}…{}", &s[..a], &s[b..]),
            _ => s.to_string(),
        }
    };
    let mut s = cut(page, "<style>", "</style>");
    s = cut(&s, "<script>", "</script>");
    for tag in [
        "<section", "<h1", "<h2", "<p", "<div", "<details", "<summary", "<pre", "<table", "<tr",
        "<li", "<ul", "<label", "<input", "<button", "<svg", "<path", "<a href", "<footer",
        "<script", "<meta", "<title", "<style", "</main",
    ] {
        s = s.replace(tag, &format!("\n{tag}"));
    }
    s.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        // The state's lineage and serial (how many commits the prior apply batched) vary.
        .map(|l| {
            if l.starts_with("<p class=\"meta\">prov ") {
                "<p class=\"meta\">(prov version, state and configuration)</p>"
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// What differs from run to run in what apply computed (`before` shows it since computed
/// attributes are part of Terraform's shape): sim ids, addresses and creation times, replaced by
/// stand-ins.
fn stable(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let hex = |t: &str| t.len() == 12 && t.chars().all(|c| c.is_ascii_hexdigit());
            if s.strip_prefix("sim-").is_some_and(hex) {
                *s = "sim-ID".into();
            } else if s.len() == 20 && s.ends_with('Z') && s.as_bytes().get(10) == Some(&b'T') {
                *s = "TIMESTAMP".into();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(stable),
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                // Which server gets which simulated address depends on creation order.
                if matches!(k.as_str(), "public_ip" | "private_ip") && x.is_string() {
                    *x = "IP".into();
                } else {
                    stable(x);
                }
            }
        }
        _ => {}
    }
}

#[test]
fn plan_snapshots() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 10,
        "expected the snapshot cases under {}",
        root.display()
    );
    let failures: Vec<String> = cases.iter().flat_map(|c| run_case(c)).collect();
    assert!(
        failures.is_empty(),
        "{} snapshot(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
