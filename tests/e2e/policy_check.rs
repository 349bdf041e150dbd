//! `prov policy check`: conftest's conventions over prov's plans — deny/violation/warn rules with suffixes, namespaces, data files, exit codes, input from a saved plan, plan JSON or stdin, and policy errors naming the file and line.

use super::*;
use std::io::Write;
use std::process::Stdio;

const SERVERS: &str = r#"{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a", tags = { team = "web" } },
    db = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}"#;

/// Policies in three files of package `main` plus one of package `costs`, with data files.
const DENY: &str = r#"package main

import rego.v1

deny contains msg if {
	rc := input.resource_changes[_]
	"delete" in rc.change.actions
	msg := sprintf("%s would be deleted", [rc.address])
}
"#;

const ZONES: &str = r#"package main

import rego.v1

# data.zones.allowed comes from zones/allowed.yaml, data.owners from owners.json.
violation_zone contains {"msg": msg, "zone": zone} if {
	rc := input.resource_changes[_]
	zone := rc.change.after.zone
	not zone in data.zones.allowed
	msg := sprintf("%s is in zone %s", [rc.address, zone])
}

warn_untagged contains msg if {
	rc := input.resource_changes[_]
	rc.type == "server"
	after := rc.change.after
	is_object(after)
	not after.tags.team
	msg := sprintf("%s has no team tag (owners: %s)", [rc.address, concat(",", data.owners)])
}
"#;

const COSTS: &str = r#"package costs

import rego.v1

deny contains msg if {
	count([rc | rc := input.resource_changes[_]; "create" in rc.change.actions]) > 2
	msg := "more than two servers created at once"
}
"#;

fn policies(ws: &Ws) -> PathBuf {
    let dir = ws.dir.join("policy");
    std::fs::create_dir_all(dir.join("zones")).unwrap();
    std::fs::write(dir.join("deny.rego"), DENY).unwrap();
    std::fs::write(dir.join("zones.rego"), ZONES).unwrap();
    std::fs::write(dir.join("costs.rego"), COSTS).unwrap();
    std::fs::write(dir.join("zones/allowed.yaml"), "allowed:\n  - sim-a\n").unwrap();
    std::fs::write(dir.join("owners.json"), r#"{"owners": ["ops"]}"#).unwrap();
    // conftest leaves tests of the policies out; so does prov.
    std::fs::write(dir.join("deny_test.rego"), "this is not rego").unwrap();
    dir
}

/// `prov ARGS` with `stdin` on standard input.
fn with_stdin(ws: &Ws, args: &[&str], stdin: &str) -> Run {
    let mut child = command(&ws.dir, args, &[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

#[test]
fn deny_warn_violation_data_and_exit_codes_follow_conftest() {
    let ws = Ws::new(SERVERS);
    policies(&ws);
    ws.prov(&["apply", "--auto-approve"]).ok();
    // web moves to a zone the data file does not allow (a replacement) and loses its tag; db
    // is deleted.
    ws.write(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-b" } } }"#);
    ws.prov(&["plan", "--out", "plan.bin"]).ok();

    let r = ws.prov(&["policy", "check", "plan.bin"]).code(1);
    let lines: Vec<&str> = r.stdout.lines().collect();
    for want in [
        "WARN - plan.bin - main - server.web has no team tag (owners: ops)",
        "FAIL - plan.bin - main - server.db would be deleted",
        "FAIL - plan.bin - main - server.web would be deleted",
        "FAIL - plan.bin - main - server.web is in zone sim-b",
    ] {
        assert!(lines.contains(&want), "missing {want:?} in\n{}", r.stdout);
    }
    // Each result names its rule and policy file.
    assert!(
        lines.contains(&"     deny in policy/deny.rego"),
        "{}",
        r.stdout
    );
    assert!(lines.contains(&"     violation_zone in policy/zones.rego"));
    // 3 rule definitions in main: deny (2 failures), violation_zone (1), warn_untagged (1).
    assert!(
        r.stdout
            .contains("4 tests, 0 passed, 1 warning, 3 failures, 0 exceptions"),
        "{}",
        r.stdout
    );
    // The costs package is not checked unless asked for.
    assert!(!r.stdout.contains("costs"), "{}", r.stdout);

    ws.prov(&["policy", "check", "plan.bin", "--fail-on-warn"])
        .code(2);

    // JSON: conftest's shape, the violation's other keys as metadata.
    let r = ws.prov(&["policy", "check", "plan.bin", "--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["namespace"], "main");
    assert_eq!(v[0]["filename"], "plan.bin");
    assert_eq!(v[0]["failures"].as_array().unwrap().len(), 3, "{v:#}");
    let zone = v[0]["failures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "violation_zone")
        .unwrap();
    assert_eq!(zone["msg"], "server.web is in zone sim-b");
    assert_eq!(zone["metadata"]["zone"], "sim-b");
    assert_eq!(v[0]["warnings"][0]["rule"], "warn_untagged");
}

#[test]
fn warnings_alone_pass_unless_fail_on_warn_and_namespaces_are_chosen() {
    let ws = Ws::new(SERVERS);
    policies(&ws);
    // Only creates: nothing denied in main; db has no team tag (a warning).
    let json = ws.prov(&["plan", "--json"]).ok().stdout;
    std::fs::write(ws.dir.join("plan.json"), &json).unwrap();
    ws.prov(&["policy", "check", "plan.json"])
        .ok()
        .has("WARN - plan.json - main - server.db has no team tag")
        .has("3 tests, 2 passed, 1 warning, 0 failures, 0 exceptions");
    ws.prov(&["policy", "check", "plan.json", "--fail-on-warn"])
        .code(1);

    // Standard input, named `-` in the output as conftest does.
    with_stdin(&ws, &["policy", "check", "-"], &json)
        .ok()
        .has("WARN - - main - server.db has no team tag");

    // Another namespace only; then every namespace.
    ws.prov(&["policy", "check", "plan.json", "--namespace", "costs"])
        .ok()
        .has("1 test, 1 passed, 0 warnings, 0 failures, 0 exceptions")
        .lacks("team tag");
    ws.prov(&["policy", "check", "plan.json", "--all-namespaces"])
        .ok()
        .has("4 tests, 3 passed, 1 warning, 0 failures, 0 exceptions");

    // Three servers created at once: the costs package denies.
    ws.write(&SERVERS.replace(
        "db = {",
        r#"cache = { provider = "sim", plan = "small", zone = "sim-a", tags = { team = "c" } }, db = {"#,
    ));
    ws.prov(&["plan", "--out", "plan.bin"]).ok();
    ws.prov(&["policy", "check", "plan.bin", "-n", "costs", "-n", "main"])
        .code(1)
        .has("FAIL - plan.bin - costs - more than two servers created at once")
        .has("WARN - plan.bin - main - server.db has no team tag");

    // A namespace without rules checks nothing: an error, not a pass.
    ws.prov(&["policy", "check", "plan.bin", "--namespace", "cost"])
        .code(1)
        .has("no deny, violation or warn rules in package cost")
        .has("costs, main");
}

#[test]
fn exceptions_and_plan_json_from_show() {
    let ws = Ws::new(SERVERS);
    let dir = policies(&ws);
    std::fs::write(
        dir.join("exceptions.rego"),
        "package main\n\nimport rego.v1\n\nexception contains rules if {\n\trules := [\"zone\"]\n}\n",
    )
    .unwrap();
    ws.prov(&["plan", "--out", "plan.bin"]).ok();
    let shown = ws.prov(&["show", "--json", "plan.bin"]).ok().stdout;
    std::fs::write(ws.dir.join("shown.json"), shown).unwrap();
    ws.prov(&["policy", "check", "shown.json"])
        .ok()
        .has("EXCP - shown.json - main - data.main.exception[_][_] == \"zone\"")
        .has("WARN - shown.json - main - server.db has no team tag")
        .has("3 tests, 1 passed, 1 warning, 0 failures, 1 exception");
}

#[test]
fn policy_errors_name_the_file_and_line() {
    let ws = Ws::new(SERVERS);
    let dir = policies(&ws);
    ws.prov(&["plan", "--out", "plan.bin"]).ok();
    std::fs::write(
        dir.join("broken.rego"),
        "package main\n\nimport rego.v1\n\ndeny contains msg if {\n\tmsg := \"x\" +\n}\n",
    )
    .unwrap();
    let r = ws
        .prov(&["policy", "check", "plan.bin"])
        .code(1)
        .has("broken.rego");
    assert!(
        r.stderr.contains("broken.rego:6") || r.stderr.contains("broken.rego:7"),
        "the error should name the line: {}",
        r.stderr
    );
    std::fs::remove_file(dir.join("broken.rego")).unwrap();

    // Rego v0 syntax is refused with a hint, and accepted with --rego-version v0.
    std::fs::write(
        dir.join("old.rego"),
        "package main\n\ndeny_old[msg] {\n\tinput.resource_changes[_].type == \"nothing\"\n\tmsg := \"never\"\n}\n",
    )
    .unwrap();
    ws.prov(&["policy", "check", "plan.bin"])
        .code(1)
        .has("old.rego")
        .has("--rego-version v0");
    std::fs::remove_file(dir.join("zones.rego")).unwrap();
    std::fs::remove_file(dir.join("deny.rego")).unwrap();
    std::fs::remove_file(dir.join("costs.rego")).unwrap();
    ws.prov(&["policy", "check", "plan.bin", "--rego-version", "v0"])
        .ok()
        .has("1 test, 1 passed");

    // A result object without `msg`, a bad data file, no policies, a bad input: clear errors.
    std::fs::write(
        dir.join("nomsg.rego"),
        "package main\n\ndeny[{\"text\": \"no msg\"}] { true }\n",
    )
    .unwrap();
    ws.prov(&["policy", "check", "plan.bin", "--rego-version", "v0"])
        .code(1)
        .has("data.main.deny")
        .has("needs a `msg`");
    std::fs::remove_file(dir.join("nomsg.rego")).unwrap();
    std::fs::write(dir.join("owners.json"), "{\"owners\": [").unwrap();
    ws.prov(&["policy", "check", "plan.bin", "--rego-version", "v0"])
        .code(1)
        .has("owners.json:1");
    ws.prov(&["policy", "check", "plan.bin", "--policy", "nowhere"])
        .code(1)
        .has("nowhere");
    std::fs::write(ws.dir.join("other.json"), "{\"a\": 1}").unwrap();
    ws.prov(&["policy", "check", "other.json", "--rego-version", "v0"])
        .code(1)
        .has("neither plan JSON");
    ws.prov(&["policy", "check", "main.ncl"])
        .code(1)
        .has("main.ncl");
}

#[test]
fn terraforms_own_plan_json_is_checked_the_same_way() {
    // The policy fixture written for `terraform show -json`, over Terraform's own plans.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy");
    let ws = Ws::new(SERVERS);
    let policy = fixtures.join("deny_delete.rego");
    let policy = policy.to_str().unwrap();
    let plan = fixtures.join("terraform-delete.json");
    ws.prov(&[
        "policy",
        "check",
        plan.to_str().unwrap(),
        "--policy",
        policy,
    ])
    .code(1)
    .has(r#"- main - terraform_data.web would be deleted (actions ["delete"])"#)
    .has("1 test, 0 passed, 0 warnings, 1 failure, 0 exceptions");
    let plan = fixtures.join("terraform-create.json");
    ws.prov(&[
        "policy",
        "check",
        plan.to_str().unwrap(),
        "--policy",
        policy,
    ])
    .ok()
    .has("1 test, 1 passed");
}
