//! Policy compatibility: one conftest/OPA Rego policy, written for `terraform show -json`, gives the same verdicts on Terraform's plans and on `prov show --json`.
//!
//! The Terraform side reads fixtures committed under `tests/fixtures/policy/` (produced by
//! `regen-terraform.sh` there); the prov side drives the built `prov` binary on a `sim` workspace
//! in a temporary directory. Both are evaluated with the `regorus` Rego interpreter against the
//! same unmodified `deny_delete.rego`.

use serde_json::Value as Json;
use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Terraform's plan JSON action names (`change.actions` elements).
const ACTIONS: [&str; 5] = ["no-op", "create", "read", "update", "delete"];

/// A `prov` invocation that takes longer than this is reported as hung rather than waited on.
const PROV_TIMEOUT: Duration = Duration::from_secs(120);

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy")
}

fn read_fixture(name: &str) -> Json {
    let path = fixtures().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

/// What the policy says about one plan.
#[derive(Debug)]
struct Verdict {
    /// The `deny` messages, sorted.
    denies: Vec<String>,
    /// Every action named in any `resource_changes[].change.actions`.
    actions: BTreeSet<String>,
}

impl Verdict {
    /// The deny messages with the leading resource address replaced by `<addr>`, so verdicts on
    /// different tools' plans compare on what happens rather than on what the resource is called.
    fn denies_without_addresses(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .denies
            .iter()
            .map(|m| match m.split_once(' ') {
                Some((_, rest)) => format!("<addr> {rest}"),
                None => m.clone(),
            })
            .collect();
        v.sort();
        v
    }
}

fn strings_of(value: &regorus::Value, what: &str) -> Vec<String> {
    let items: Vec<regorus::Value> = match value {
        regorus::Value::Undefined => Vec::new(),
        regorus::Value::Set(s) => s.iter().cloned().collect(),
        regorus::Value::Array(a) => a.iter().cloned().collect(),
        other => panic!("{what}: expected a set, got {other:?}"),
    };
    let mut out: Vec<String> = items
        .iter()
        .map(|v| {
            v.as_string()
                .unwrap_or_else(|e| panic!("{what}: element {v:?} is not a string: {e}"))
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// Evaluates `deny_delete.rego` (package `main`, as conftest expects) against `plan`.
fn evaluate(plan: &Json) -> Verdict {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy_from_file(fixtures().join("deny_delete.rego"))
        .unwrap_or_else(|e| panic!("loading deny_delete.rego: {e}"));
    engine
        .set_input_json(&plan.to_string())
        .unwrap_or_else(|e| panic!("setting input: {e}"));

    let deny = engine
        .eval_rule("data.main.deny".to_string())
        .unwrap_or_else(|e| panic!("evaluating data.main.deny: {e}"));
    let denies = strings_of(&deny, "data.main.deny");

    let results = engine
        .eval_query(
            "{a | a := input.resource_changes[_].change.actions[_]}".to_string(),
            false,
        )
        .unwrap_or_else(|e| panic!("collecting actions: {e}"));
    let actions = match results.result.first() {
        Some(r) => strings_of(&r.expressions[0].value, "actions")
            .into_iter()
            .collect(),
        None => BTreeSet::new(),
    };
    Verdict { denies, actions }
}

/// The parts of Terraform's plan JSON that policies read, checked on any plan (Terraform's or prov's).
fn assert_plan_shape(plan: &Json, what: &str) {
    assert!(
        plan.get("format_version").is_some_and(Json::is_string),
        "{what}: `format_version` must be a string, got {:?}",
        plan.get("format_version")
    );
    let changes = plan
        .get("resource_changes")
        .and_then(Json::as_array)
        .unwrap_or_else(|| panic!("{what}: `resource_changes` must be an array"));
    for rc in changes {
        for key in ["address", "mode", "type", "name", "provider_name"] {
            assert!(
                rc.get(key).is_some_and(Json::is_string),
                "{what}: resource change {rc} needs a string `{key}`"
            );
        }
        let change = rc
            .get("change")
            .and_then(Json::as_object)
            .unwrap_or_else(|| panic!("{what}: resource change {rc} needs a `change` object"));
        let actions = change
            .get("actions")
            .and_then(Json::as_array)
            .unwrap_or_else(|| panic!("{what}: {rc} needs `change.actions` as an array"));
        assert!(
            !actions.is_empty(),
            "{what}: {rc} has empty `change.actions`"
        );
        for a in actions {
            assert!(
                a.as_str().is_some_and(|s| ACTIONS.contains(&s)),
                "{what}: {rc}: action {a} is not one of {ACTIONS:?}"
            );
        }
        for key in ["before", "after", "after_unknown"] {
            assert!(
                change.contains_key(key),
                "{what}: {rc} needs `change.{key}` (null where there is nothing)"
            );
        }
    }
}

fn terraform_verdict(fixture: &str) -> Verdict {
    let plan = read_fixture(fixture);
    assert_plan_shape(&plan, fixture);
    evaluate(&plan)
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---------------------------------------------------------------------------------------------
// Terraform: the policy means what it says on real `terraform show -json` output.

#[test]
fn terraform_delete_plan_is_denied_once() {
    let v = terraform_verdict("terraform-delete.json");
    assert_eq!(
        v.denies,
        vec![r#"terraform_data.web would be deleted (actions ["delete"])"#],
        "{v:?}"
    );
    assert_eq!(v.actions, set(&["create", "delete", "no-op"]), "{v:?}");
}

#[test]
fn terraform_create_plan_is_allowed() {
    let v = terraform_verdict("terraform-create.json");
    assert!(v.denies.is_empty(), "{v:?}");
    assert_eq!(v.actions, set(&["create", "update"]), "{v:?}");
}

#[test]
fn terraform_replace_plan_is_denied_once() {
    let v = terraform_verdict("terraform-replace.json");
    assert_eq!(
        v.denies,
        vec![r#"terraform_data.web would be deleted (actions ["delete", "create"])"#],
        "{v:?}"
    );
    assert_eq!(v.actions, set(&["create", "delete", "no-op"]), "{v:?}");
}

// ---------------------------------------------------------------------------------------------
// prov: the same policy, unchanged, on `prov show --json`.

const BOTH_SERVERS: &str = r#"{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a" },
    db = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}
"#;

const WEB_ONLY: &str = r#"{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}
"#;

/// Runs `prov ARGS` in `dir`; panics with its output unless it exits 0. Returns stdout.
fn prov(dir: &Path, args: &[&str]) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_prov"))
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting prov {args:?}: {e}"));
    let mut out = child.stdout.take().expect("stdout piped");
    let mut err = child.stderr.take().expect("stderr piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).map(|_| s)
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).map(|_| s)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for prov") {
            break status;
        }
        if started.elapsed() > PROV_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("prov {args:?} did not finish within {PROV_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out_reader
        .join()
        .expect("stdout reader")
        .expect("stdout utf-8");
    let stderr = err_reader
        .join()
        .expect("stderr reader")
        .expect("stderr utf-8");
    assert!(
        status.success(),
        "prov {args:?} exited with {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    stdout
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(config: &str) -> Self {
        let ws = Workspace {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        ws.write_config(config);
        ws
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn arg(&self) -> &str {
        self.path().to_str().expect("utf-8 temp path")
    }

    fn write_config(&self, config: &str) {
        std::fs::write(self.path().join("main.ncl"), config).expect("writing main.ncl");
    }

    fn apply(&self) {
        prov(self.path(), &["apply", self.arg(), "--auto-approve"]);
    }

    /// `prov plan DIR [EXTRA...] --out DIR/plan.json`, then `prov show --json DIR/plan.json`.
    fn planned_json(&self, extra: &[&str]) -> Json {
        let planfile = self.path().join("plan.json");
        let planfile = planfile.to_str().expect("utf-8 temp path");
        let mut args = vec!["plan", self.arg()];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", planfile]);
        prov(self.path(), &args);
        let shown = prov(self.path(), &["show", "--json", planfile]);
        let plan: Json = serde_json::from_str(&shown)
            .unwrap_or_else(|e| panic!("`prov show --json` is not JSON: {e}\n{shown}"));
        assert_plan_shape(&plan, "prov show --json");
        plan
    }
}

/// `(change.actions, action_reason)` of every resource change that deletes something, sorted.
fn deletes_with_reasons(plan: &Json) -> Vec<(Json, Json)> {
    let mut v: Vec<(Json, Json)> = plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|rc| {
            rc["change"]["actions"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "delete"))
        })
        .map(|rc| (rc["change"]["actions"].clone(), rc["action_reason"].clone()))
        .collect();
    v.sort_by_key(|(actions, reason)| (actions.to_string(), reason.to_string()));
    v
}

/// The same number of denies, for the same kind of change, as on Terraform's plan.
fn assert_same_verdict(prov: &Verdict, terraform: &Verdict) {
    assert_eq!(
        prov.denies.len(),
        terraform.denies.len(),
        "deny counts differ\nprov: {prov:?}\nterraform: {terraform:?}"
    );
    assert_eq!(
        prov.denies_without_addresses(),
        terraform.denies_without_addresses(),
        "deny verdicts differ\nprov: {prov:?}\nterraform: {terraform:?}"
    );
}

/// Terraform lists unchanged resources too (actions `["no-op"]`), and policies that check every
/// resource (tags, plan sizes, zones) depend on that.
fn assert_lists_noop(plan: &Json, address: &str) {
    let found = plan["resource_changes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|rc| rc["address"] == address)
        .unwrap_or_else(|| panic!("{address} is missing from resource_changes: {plan:#}"));
    assert_eq!(
        found["change"]["actions"],
        serde_json::json!(["no-op"]),
        "{found:#}"
    );
}

#[test]
fn prov_delete_plan_is_denied_like_terraform() {
    let ws = Workspace::new(BOTH_SERVERS);
    ws.apply();
    ws.write_config(WEB_ONLY);
    let plan = ws.planned_json(&[]);
    let v = evaluate(&plan);
    assert_eq!(
        v.denies,
        vec![r#"server.db would be deleted (actions ["delete"])"#],
        "{v:?}"
    );
    assert_eq!(v.actions, set(&["delete", "no-op"]), "{v:?}");
    assert_lists_noop(&plan, "server.web");
    assert_same_verdict(&v, &terraform_verdict("terraform-delete.json"));
    assert_eq!(
        deletes_with_reasons(&plan),
        deletes_with_reasons(&read_fixture("terraform-delete.json")),
        "the delete should carry Terraform's `action_reason`"
    );
}

#[test]
fn prov_create_plan_is_allowed_like_terraform() {
    let ws = Workspace::new(BOTH_SERVERS);
    let plan = ws.planned_json(&[]);
    let v = evaluate(&plan);
    assert!(v.denies.is_empty(), "{v:?}");
    assert_eq!(v.actions, set(&["create"]), "{v:?}");
    assert_same_verdict(&v, &terraform_verdict("terraform-create.json"));
}

#[test]
fn prov_replace_plan_is_denied_like_terraform() {
    let ws = Workspace::new(BOTH_SERVERS);
    ws.apply();
    let plan = ws.planned_json(&["--replace", "server.web"]);
    let v = evaluate(&plan);
    assert_eq!(
        v.denies,
        vec![r#"server.web would be deleted (actions ["delete", "create"])"#],
        "{v:?}"
    );
    assert_eq!(v.actions, set(&["create", "delete", "no-op"]), "{v:?}");
    assert_lists_noop(&plan, "server.db");
    assert_same_verdict(&v, &terraform_verdict("terraform-replace.json"));
    assert_eq!(
        deletes_with_reasons(&plan),
        deletes_with_reasons(&read_fixture("terraform-replace.json")),
        "the replacement should carry Terraform's `action_reason`"
    );
}
