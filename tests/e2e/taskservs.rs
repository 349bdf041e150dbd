//! Taskservs end to end through the `prov` binary: the catalog (`prov taskserv list`), plan
//! errors for bad taskserv input (unknown name, missing dependency, conflict, settings schema,
//! template), plan wording (configure/upgrade), on_error Continue, and the `prov taskserv`
//! queries. Sim servers here; the real install on local servers is in `taskservs_local`.

use super::*;

fn ext(ws: &Ws, rel: &str, text: &str) {
    let p = ws.dir.join("extensions/taskservs").join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn sim_server(taskservs: &str) -> String {
    format!(
        r#"{{ servers = {{ db = {{ provider = "sim", plan = "small", zone = "sim-a", taskservs = {taskservs} }} }} }}"#
    )
}

#[test]
fn taskserv_list_shows_the_catalog_and_workspace_overrides() {
    let ws = Ws::new(&sim_server("{}"));
    let r = ws.prov(&["taskserv", "list"]).ok();
    for n in [
        "containerd",
        "etcd",
        "kubernetes",
        "cilium",
        "coredns",
        "redis",
        "postgres",
    ] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(n) && l.contains("built-in")),
            "{n}:\n{}",
            r.stdout
        );
    }
    assert!(r.stdout.starts_with("NAME"), "{}", r.stdout);
    ext(&ws, "redis/manifest.toml", "[extension]\nname = \"redis\"\ntype = \"taskserv\"\nversion = \"0.0.1\"\ndescription = \"mine\"\n");
    let r = ws.prov(&["taskserv", "list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let redis = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "redis")
        .unwrap();
    assert_eq!(redis["version"], "0.0.1");
    assert!(redis["source"]
        .as_str()
        .unwrap()
        .ends_with("extensions/taskservs/redis"));
    let k8s = v
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "kubernetes")
        .unwrap();
    assert_eq!(k8s["dependencies"], serde_json::json!(["containerd"]));
}

#[test]
fn bad_taskserv_input_is_a_plan_error() {
    // Unknown: the directories searched are named.
    let ws = Ws::new(&sim_server(r#"{ web = { implementation = "nginx" } }"#));
    let before = ws.state();
    ws.prov(&["plan"])
        .code(1)
        .has("taskserv.db.web")
        .has("unknown taskserv \"nginx\"")
        .has(&format!(
            "searched: {}",
            ws.dir.join("extensions/taskservs").display()
        ))
        .has("the built-in catalog");
    assert_eq!(ws.state(), before);

    // The catalog's kubernetes needs containerd on the same server (its manifest).
    ws.write(&sim_server(
        r#"{ kubernetes = { implementation = "kubernetes" } }"#,
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("taskserv.db.kubernetes")
        .has("requires taskserv \"containerd\", which is not declared on server db");

    // A declared conflict names both.
    ws.write(&sim_server(
        r#"{ redis = {}, valkey = { depends_on = [{ name = "redis", kind = 'ConflictsWith }] } }"#,
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("taskserv.db.valkey")
        .has("conflicts with taskserv.db.redis");

    // Settings are checked against the taskserv's schema before anything is planned.
    ws.write(&sim_server(
        r#"{ redis = { implementation = "redis", settings = { port = "six" } } }"#,
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("taskserv.db.redis")
        .has("redis/schemas/settings.ncl");
    ws.write(&sim_server(
        r#"{ redis = { implementation = "redis", settings = { prot = 7000 } } }"#,
    ));
    ws.prov(&["validate"]).code(1).has("prot");

    // A template error names the template file and line.
    ext(
        &ws,
        "hello/manifest.toml",
        "[extension]\nname = \"hello\"\ntype = \"taskserv\"\nversion = \"1.0.0\"\n",
    );
    ext(
        &ws,
        "hello/templates/hello.conf.j2",
        "# hello\nname={{ settings.name }}\nport={{ settings.port }}\n",
    );
    ws.write(&sim_server(
        r#"{ hello = { implementation = "hello", settings = { name = "x" } } }"#,
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("templates/hello.conf.j2:3")
        .has("undefined");
    assert_eq!(ws.state(), before);
}

#[test]
fn plan_says_configure_or_upgrade_and_taskserv_queries_answer() {
    let cfg = |version: &str, maxmemory: &str| {
        sim_server(&format!(
            r#"{{ redis = {{ version = "{version}", settings = {{ maxmemory = "{maxmemory}" }} }} }}"#
        ))
    };
    let ws = Ws::new(&cfg("1.0.0", "64mb"));
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(&cfg("1.0.0", "128mb"));
    ws.prov(&["plan"])
        .code(0)
        .has("~ taskserv.db.redis (sim) will be configured (configure, restarts it)");
    ws.write(&cfg("2.0.0", "64mb"));
    ws.prov(&["plan"])
        .has("taskserv.db.redis (sim) will be upgraded (upgrade)");
    ws.write(&cfg("2.0.0", "128mb"));
    ws.prov(&["plan"])
        .has("taskserv.db.redis (sim) will be upgraded, then configured (upgrade + configure)");

    let r = ws.prov(&["taskserv", "status"]).ok();
    assert!(r.stdout.starts_with("ADDRESS"), "{}", r.stdout);
    assert!(
        r.stdout.lines().any(|l| l.starts_with("taskserv.db.redis")
            && l.contains("sim")
            && l.contains("1.0.0")),
        "{}",
        r.stdout
    );
    let r = ws.prov(&["taskserv", "status", "redis", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["result"]["running"], true);
    ws.prov(&["taskserv", "versions"])
        .ok()
        .has("1.0.0 1.1.0 2.0.0");
    ws.prov(&["taskserv", "check-updates", "--detailed-exitcode"])
        .code(2)
        .has("update available");
    ws.prov(&["taskserv", "restart", "taskserv.db.redis"])
        .ok()
        .has("taskserv.db.redis: restarted");
    ws.prov(&["taskserv", "status", "nothing-like-it"])
        .code(1)
        .has("no recorded taskserv matches \"nothing-like-it\"");
}

#[test]
fn on_error_continue_lets_dependents_run() {
    let ws = Ws::new(&sim_server(
        r#"{
          flaky = { on_error = 'Continue },
          app = { depends_on = ["flaky"] },
          strict = {},
          after_strict = { depends_on = ["strict"] },
        }"#,
    ));
    let fail = [("PROV_SIM_FAIL_TASKSERVS", "db/flaky,db/strict")];
    ws.prov_env(&["apply", "--auto-approve"], &fail)
        .code(1)
        .has("taskserv.db.flaky")
        .has("on_error = Continue: dependents still run")
        .has("taskserv.db.after_strict");
    let listed = ws.prov(&["state", "list"]).ok().stdout;
    assert!(
        listed.contains("taskserv.db.app"),
        "Continue: the dependent ran\n{listed}"
    );
    assert!(
        !listed.contains("taskserv.db.flaky\n"),
        "the failed one is not recorded\n{listed}"
    );
    assert!(
        !listed.contains("taskserv.db.after_strict"),
        "Stop: the dependent was skipped\n{listed}"
    );
    // The next apply tries the failed ones again.
    ws.prov(&["plan"])
        .has("+ taskserv.db.flaky")
        .has("+ taskserv.db.strict");
}
