//! `prov server ...` and `prov provider ...` on the sim provider: tables and --json, power
//! operations that leave the state alone, provider queries, and the error paths.

use super::*;
use serde_json::Value;

const LIVE: &str = r#"
{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a", tags = { role = "web" },
            firewall_rules = [ { direction = 'ingress, protocol = 'tcp, port = "443", action = 'allow } ] },
    db = { provider = "sim", plan = "medium", zone = "sim-b" },
  },
}
"#;

fn json(r: Run) -> Value {
    let r = r.ok();
    serde_json::from_str(&r.stdout)
        .unwrap_or_else(|e| panic!("not one JSON document ({e}):\n{}", r.stdout))
}

#[test]
fn server_list_info_and_power_operations() {
    let ws = Ws::new(LIVE);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["sim", "add-unmanaged", "stray"]).ok();

    let t = ws.prov(&["server", "list"]).ok();
    let lines: Vec<&str> = t.stdout.lines().collect();
    assert!(lines[0].starts_with("PROVIDER  ID"), "{}", t.stdout);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" db ") && l.ends_with("server.db")),
        "{}",
        t.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" web ") && l.ends_with("server.web")),
        "{}",
        t.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" stray ") && l.ends_with("no (tagged for this workspace)")),
        "{}",
        t.stdout
    );
    let l = json(ws.prov(&["server", "list", "--json"]));
    // The workspace's identity: its state's lineage, what its servers are tagged with.
    let dump: Value = serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    assert_eq!(l["workspace"], dump["lineage"]);
    assert_eq!(l["providers"], serde_json::json!(["sim"]));
    let servers = l["servers"].as_array().unwrap();
    assert_eq!(servers.len(), 3, "{l:#}");
    let by_host = |h: &str| servers.iter().find(|s| s["hostname"] == h).unwrap().clone();
    assert_eq!(by_host("web")["managed"], true);
    assert_eq!(by_host("web")["address"], "server.web");
    assert_eq!(by_host("stray")["managed"], false);
    assert_eq!(by_host("stray")["workspace_tag"], dump["lineage"]);
    assert_eq!(by_host("db")["plan"], "medium");

    let info = ws.prov(&["server", "info", "web"]).ok();
    info_has(&info.stdout, "address", "server.web");
    info_has(&info.stdout, "status", "running");
    info_has(&info.stdout, "tags.role", "web");
    info_has(
        &info.stdout,
        "firewall_rules[0]",
        "allow ingress tcp port 443",
    );
    let i = json(ws.prov(&["server", "info", "server.web", "--json"]));
    assert_eq!(i["address"], "server.web");
    assert_eq!(i["provider"], "sim");
    assert_eq!(i["status"], "running");
    assert_eq!(i["id"], by_host("web")["id"]);

    // Power operations act on the live server and leave the state alone.
    let state = ws.state();
    ws.prov(&["server", "stop", "web"])
        .ok()
        .has("server.web (sim ")
        .has("stop done, now stopped");
    assert_eq!(
        json(ws.prov(&["server", "info", "web", "--json"]))["status"],
        "stopped"
    );
    assert_eq!(ws.state(), state, "stop must not write the state");
    let s = json(ws.prov(&["server", "start", "web", "--json"]));
    assert_eq!(s["action"], "start");
    assert_eq!(s["status"], "running");
    let r = json(ws.prov(&["server", "reboot", "db", "--json"]));
    assert_eq!(
        (r["address"].as_str(), r["status"].as_str()),
        (Some("server.db"), Some("running"))
    );
    assert_eq!(ws.state(), state);

    // Deleted outside prov: listed as missing, and info says so.
    ws.prov(&["sim", "delete", "db"]).ok();
    ws.prov(&["server", "list"])
        .ok()
        .has("server.db: recorded as sim id ")
        .has("but the provider does not report it");
    let l = json(ws.prov(&["server", "list", "--json"]));
    assert_eq!(l["missing"][0]["address"], "server.db");
    ws.prov(&["server", "info", "db"])
        .code(1)
        .has("server.db")
        .has("provider \"sim\" has no server with id");
}

fn info_has(table: &str, field: &str, value: &str) {
    assert!(
        table.lines().any(|l| l.starts_with(field)
            && l[field.len()..].starts_with(' ')
            && l.trim_end().ends_with(value)),
        "expected row {field} = {value} in:\n{table}"
    );
}

#[test]
fn provider_queries_as_tables_and_json() {
    let ws = Ws::new(LIVE);
    let plans = ws.prov(&["provider", "plans", "sim"]).ok();
    assert!(plans.stdout.starts_with("PLAN"), "{}", plans.stdout);
    assert!(plans.stdout.contains("small"), "{}", plans.stdout);
    let p = json(ws.prov(&["provider", "plans", "sim", "--json"]));
    assert_eq!(p["provider"], "sim");
    assert!(p["plans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == "small"));

    let z = ws.prov(&["provider", "zones", "sim"]).ok();
    assert!(z.stdout.contains("sim-a"), "{}", z.stdout);
    let z = json(ws.prov(&["provider", "zones", "sim", "--json"]));
    assert!(z["zones"]
        .as_array()
        .unwrap()
        .iter()
        .any(|x| x["name"] == "sim-b"));

    let pr = ws.prov(&["provider", "pricing", "sim"]).ok();
    assert!(pr.stdout.starts_with("PLAN"), "{}", pr.stdout);
    let pr = json(ws.prov(&["provider", "pricing", "sim", "--json"]));
    assert!(pr["pricing"][0]["hourly"].as_f64().is_some(), "{pr:#}");

    ws.prov(&["provider", "info", "sim"])
        .ok()
        .has("operations")
        .has("get-ssh-access");
    let i = json(ws.prov(&["provider", "info", "sim", "--json"]));
    assert_eq!(i["name"], "sim");

    ws.prov(&["provider", "test", "sim"])
        .ok()
        .has("sim: connection ok");
    let t = json(ws.prov(&["provider", "test", "sim", "--json"]));
    assert_eq!(t["success"], true);
}

#[test]
fn unknown_servers_and_providers_are_errors_naming_them() {
    let ws = Ws::new(LIVE);
    // Declared but never applied.
    ws.prov(&["server", "info", "web"])
        .code(1)
        .has("server.web")
        .has("not created yet");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["server", "stop", "nope"])
        .code(1)
        .has("unknown server \"nope\"")
        .has("known servers: server.db, server.web");
    ws.prov(&["server", "info", "taskserv.x.y"])
        .code(1)
        .has("not a server");
    ws.prov(&["provider", "zones", "nimbus"])
        .code(1)
        .has("unknown provider \"nimbus\"")
        .has("sim");
    ws.prov(&["server", "list", "--json", "--dir", "missing"])
        .code(1)
        .has("missing: not a directory");
}

#[test]
fn ssh_to_a_sim_server_is_a_clear_error_without_hanging() {
    let ws = Ws::new(LIVE);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let started = std::time::Instant::now();
    ws.prov(&["server", "ssh", "web", "--", "true"])
        .code(1)
        .has("server.web (sim ")
        .has("documentation range")
        .has("not reachable");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
