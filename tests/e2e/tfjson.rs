//! prov's JSON in Terraform's shapes, checked key by key against Terraform 1.x's own output (tests/fixtures/tfjson/, made by regen.sh there): `prov plan --json`/`show --json PLAN` against `terraform show -json PLANFILE`, `prov show --json` against the state's `terraform show -json`, `prov output --json` against `terraform output -json`; plus the values policies rely on (unknowns left out of `after`, computed attributes of existing objects, references, drift, semantic versions), and `apply --json` events on a no-op.

use super::*;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tfjson")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every key Terraform has at this level, prov has too (prov may have more).
fn covers(tf: &Value, prov: &Value, what: &str) {
    let t = tf
        .as_object()
        .unwrap_or_else(|| panic!("terraform {what}: not an object: {tf}"));
    let p = prov
        .as_object()
        .unwrap_or_else(|| panic!("prov {what}: not an object: {prov:#}"));
    let missing: Vec<&String> = t.keys().filter(|k| !p.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "prov's {what} lacks Terraform's keys {missing:?}\nprov: {prov:#}"
    );
}

/// `covers` for the first element of two arrays of objects.
fn covers_items(tf: &Value, prov: &Value, what: &str) {
    let t = tf
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("terraform {what}: empty"));
    let p = prov
        .as_array()
        .and_then(|a| a.first())
        .unwrap_or_else(|| panic!("prov {what}: empty: {prov:#}"));
    covers(t, p, what);
}

fn entry<'a>(list: &'a Value, address: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x["address"] == address)
        .unwrap_or_else(|| panic!("{address} missing from {list:#}"))
}

fn is_semver(v: &Value) -> bool {
    let s = v.as_str().unwrap_or_default();
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

const CFG: &str = r#"{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           tags = { token = "TFJSON-secret-7" }, sensitive = ["tags.token"] },
    web = { provider = "sim", plan = "small", zone = "sim-a",
            tags = { db = "${server.db.private_ip}" } },
    old = { provider = "sim", plan = "small", zone = "sim-a" },
  },
  outputs = { web_ip = "${server.web.public_ip}", token = "${server.db.tags.token}" },
}"#;

#[test]
fn plan_state_and_output_json_have_terraforms_shape() {
    let ws = Ws::new(CFG);
    ws.prov(&["apply", "--auto-approve"]).ok();

    // State and outputs, after the first apply (as Terraform's fixtures are).
    let state: Value = serde_json::from_str(&ws.state()).unwrap();
    let tf_state = fixture("state.json");
    covers(&tf_state, &state, "state");
    covers(&tf_state["values"], &state["values"], "state values");
    covers_items(
        &tf_state["values"]["root_module"]["resources"],
        &state["values"]["root_module"]["resources"],
        "state resource",
    );
    covers(
        &tf_state["values"]["outputs"]["web_id"],
        &state["values"]["outputs"]["web_ip"],
        "state output",
    );
    let db = entry(&state["values"]["root_module"]["resources"], "server.db");
    assert!(
        db["values"]["id"].is_string() && db["values"]["private_ip"].is_string(),
        "{db:#}"
    );
    assert_eq!(db["values"]["tags"]["token"], "(sensitive value)");
    assert_eq!(db["sensitive_values"]["tags"]["token"], true);
    assert_eq!(
        state["values"]["outputs"]["token"]["value"],
        "(sensitive value)"
    );
    assert_eq!(state["values"]["outputs"]["token"]["sensitive"], true);
    assert!(
        is_semver(&state["terraform_version"]),
        "{}",
        state["terraform_version"]
    );
    assert_eq!(state["format_version"], tf_state["format_version"]);

    let out: Value = serde_json::from_str(&ws.prov(&["output", "--json"]).ok().stdout).unwrap();
    let tf_out = fixture("output.json");
    for (name, tf_name) in [("web_ip", "web_id"), ("token", "token")] {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&out[name]), keys(&tf_out[tf_name]), "{out:#}");
    }
    assert_eq!(out["web_ip"]["type"], "string");
    assert_eq!(out["web_ip"]["sensitive"], false);
    assert_eq!(out["token"]["value"], "(sensitive value)");
    assert_eq!(out["token"]["sensitive"], true);
    // Asked by name, the value itself (as `terraform output -json NAME`).
    assert_eq!(
        ws.prov(&["output", "token", "--json"]).ok().stdout.trim(),
        "\"TFJSON-secret-7\""
    );

    // The plan: db updated, old deleted, cache created, web drifted outside prov.
    ws.prov(&["sim", "set", "web", "plan", "medium"]).ok();
    ws.write(
        &CFG.replace(
            r#"db = { provider = "sim", plan = "small""#,
            r#"db = { provider = "sim", plan = "medium""#,
        )
        .replace(
            r#"old = { provider = "sim", plan = "small", zone = "sim-a" },"#,
            r#"cache = { provider = "sim", plan = "small", zone = "sim-a" },"#,
        ),
    );
    ws.prov(&["plan", "--out", "plan.bin"]).ok();
    let plan: Value =
        serde_json::from_str(&ws.prov(&["show", "--json", "plan.bin"]).ok().stdout).unwrap();
    let direct: Value = serde_json::from_str(&ws.prov(&["plan", "--json"]).ok().stdout).unwrap();
    let tf = fixture("plan.json");
    for (p, what) in [(&plan, "show --json PLAN"), (&direct, "plan --json")] {
        covers(&tf, p, what);
    }
    covers(
        &tf["planned_values"],
        &plan["planned_values"],
        "planned_values",
    );
    covers_items(
        &tf["planned_values"]["root_module"]["resources"],
        &plan["planned_values"]["root_module"]["resources"],
        "planned resource",
    );
    covers(
        &tf["planned_values"]["outputs"]["token"],
        &plan["planned_values"]["outputs"]["token"],
        "planned output",
    );
    covers_items(
        &tf["resource_changes"],
        &plan["resource_changes"],
        "resource change",
    );
    covers(
        &tf["resource_changes"][0]["change"],
        &plan["resource_changes"][0]["change"],
        "change",
    );
    covers(
        &tf["output_changes"]["token"],
        &plan["output_changes"]["token"],
        "output change",
    );
    covers(&tf["prior_state"], &plan["prior_state"], "prior_state");
    covers(
        &tf["prior_state"]["values"],
        &plan["prior_state"]["values"],
        "prior_state values",
    );
    covers_items(
        &tf["prior_state"]["values"]["root_module"]["resources"],
        &plan["prior_state"]["values"]["root_module"]["resources"],
        "prior_state resource",
    );
    covers(
        &tf["configuration"],
        &plan["configuration"],
        "configuration",
    );
    covers(
        &tf["configuration"]["root_module"],
        &plan["configuration"]["root_module"],
        "configuration root_module",
    );
    covers_items(
        &tf["configuration"]["root_module"]["resources"],
        &plan["configuration"]["root_module"]["resources"],
        "configuration resource",
    );
    covers(
        &tf["configuration"]["provider_config"]["terraform"],
        &plan["configuration"]["provider_config"]["sim"],
        "provider_config",
    );
    assert!(plan["variables"].is_object());

    // Versions: Terraform's as a semantic version, prov's under its own key.
    assert!(
        is_semver(&plan["terraform_version"]),
        "{}",
        plan["terraform_version"]
    );
    let version = ws.prov(&["--version"]).ok().stdout;
    assert!(
        version.contains(plan["prov_version"].as_str().unwrap()),
        "{version}"
    );
    let ts = plan["timestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
        "{ts}"
    );
    assert_eq!(
        (
            plan["applyable"].clone(),
            plan["complete"].clone(),
            plan["errored"].clone()
        ),
        (Value::Bool(true), Value::Bool(true), Value::Bool(false))
    );

    // A create: unknown values are left out of `after` and listed in `after_unknown`.
    let cache = entry(&plan["resource_changes"], "server.cache");
    assert_eq!(cache["change"]["actions"], serde_json::json!(["create"]));
    assert!(cache["change"]["after"].get("id").is_none(), "{cache:#}");
    assert!(
        cache["change"]["after"].get("public_ip").is_none(),
        "{cache:#}"
    );
    assert_eq!(cache["change"]["after_unknown"]["id"], true);
    assert_eq!(cache["change"]["after"]["plan"], "small");
    // An update: what the provider computed is in `before`, and stays known in `after`.
    let db = entry(&plan["resource_changes"], "server.db");
    assert_eq!(db["change"]["actions"], serde_json::json!(["update"]));
    assert!(db["change"]["before"]["id"].is_string(), "{db:#}");
    assert!(db["change"]["before"]["private_ip"].is_string(), "{db:#}");
    assert_eq!(db["change"]["after"]["id"], db["change"]["before"]["id"]);
    assert_eq!(db["change"]["before"]["tags"]["token"], "(sensitive value)");
    let old = entry(&plan["resource_changes"], "server.old");
    assert_eq!(old["change"]["actions"], serde_json::json!(["delete"]));
    assert!(old["change"]["before"]["public_ip"].is_string(), "{old:#}");
    let prior = entry(
        &plan["prior_state"]["values"]["root_module"]["resources"],
        "server.old",
    );
    assert!(prior["values"]["id"].is_string(), "{prior:#}");
    // The drift refresh found, Terraform's way: recorded before, real after.
    let drift = entry(&plan["resource_drift"], "server.web");
    assert_eq!(drift["change"]["before"]["plan"], "small");
    assert_eq!(drift["change"]["after"]["plan"], "medium");
    // References in the configuration.
    let web = entry(
        &plan["configuration"]["root_module"]["resources"],
        "server.web",
    );
    assert_eq!(
        web["expressions"]["tags"]["references"],
        serde_json::json!(["server.db.private_ip", "server.db"])
    );
    assert_eq!(web["expressions"]["plan"]["constant_value"], "small");
    assert_eq!(web["provider_config_key"], "sim");
    assert_eq!(
        plan["configuration"]["root_module"]["outputs"]["web_ip"]["expression"]["references"],
        serde_json::json!(["server.web.public_ip"])
    );
    // Outputs: unchanged ones too, sensitive ones redacted.
    assert_eq!(
        plan["output_changes"]["token"]["actions"],
        serde_json::json!(["no-op"])
    );
    assert_eq!(plan["output_changes"]["token"]["before_sensitive"], true);
    assert_eq!(
        plan["planned_values"]["outputs"]["token"]["value"],
        "(sensitive value)"
    );
    assert!(plan["planned_values"]["outputs"]["web_ip"]["value"].is_string());
    assert!(!ws
        .prov(&["show", "--json", "plan.bin"])
        .ok()
        .stdout
        .contains("TFJSON-secret"));
}

#[test]
fn apply_json_reports_start_and_finish_on_a_no_op() {
    let ws =
        Ws::new(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a" } } }"#);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let out = ws.prov(&["apply", "--auto-approve", "--json"]).ok().stdout;
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    assert_eq!(events[0]["event"], "apply_started");
    assert_eq!(events[0]["steps"], 0);
    assert_eq!(events[1]["event"], "apply_finished");
    // A saved plan without changes, too.
    ws.prov(&["plan", "--out", "p.bin"]).ok();
    let out = ws.prov(&["apply", "p.bin", "--json"]).ok().stdout;
    assert!(
        out.contains("\"apply_started\"") && out.contains("\"apply_finished\""),
        "{out}"
    );
}
