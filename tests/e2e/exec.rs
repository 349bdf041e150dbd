//! End-to-end tests of exec providers through the built `prov`: a workspace whose
//! `extensions/providers/pyprov/` holds the Python provider fixture; plan, apply, drift and
//! destroy of servers with `provider = "pyprov"`; a broken manifest is a clear error, exit 1.

use super::*;

const PYPROV: &str = r#"
{
  providers = { pyprov = { parallelism = 2 } },
  servers = {
    web = { provider = "pyprov", plan = "small", zone = "py-a", tags = { role = "web" } },
    db = { provider = "pyprov", plan = "small", zone = "py-a",
           firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = "5432",
                               source = "10.0.0.0/8", action = 'allow }] },
  },
  outputs = { web_ip = "${server.web.public_ip}" },
}
"#;

/// Copies the Python provider fixture into `ws/extensions/providers/pyprov/`.
pub(crate) fn install_pyprov(ws: &Ws) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("providers/tests/fixtures/exec-provider");
    let dst = ws.dir.join("extensions/providers/pyprov");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["manifest.toml", "provider.py"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

fn servers_file(ws: &Ws) -> PathBuf {
    ws.dir.join(".prov/pyprov/servers.json")
}

fn servers(ws: &Ws) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(servers_file(ws)).unwrap()).unwrap()
}

fn by_host(ws: &Ws, host: &str) -> String {
    servers(ws)["servers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, s)| s["hostname"] == host)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no server {host}"))
}

#[test]
fn exec_provider_plan_apply_drift_destroy() {
    let ws = Ws::new(PYPROV);
    install_pyprov(&ws);
    ws.prov(&["validate"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("+ server.web")
        .has("+ server.db")
        .has("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy.");
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 2 succeeded")
        .has("web_ip = \"192.0.2.");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    // The Python provider holds both, with prov's ownership tags.
    let web = by_host(&ws, "web");
    let s = servers(&ws);
    assert_eq!(s["servers"][&web]["tags"]["prov:address"], "server.web");
    // Tagged with the workspace's identity: its state's lineage.
    let lineage =
        serde_json::from_str::<serde_json::Value>(&ws.prov(&["state", "pull"]).ok().stdout)
            .unwrap()["lineage"]
            .clone();
    assert_eq!(s["servers"][&web]["tags"]["prov:workspace"], lineage);
    assert_eq!(
        s["servers"][&by_host(&ws, "db")]["firewall_rules"][0]["port"],
        "5432"
    );

    // In-place change through update-server.
    ws.write(&PYPROV.replace(
        r#"web = { provider = "pyprov", plan = "small""#,
        r#"web = { provider = "pyprov", plan = "large""#,
    ));
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 1 succeeded");
    assert_eq!(servers(&ws)["servers"][&web]["plan"], "large");
    ws.write(PYPROV);

    // Out-of-band: db deleted, web resized, a stray server carrying this workspace's tags.
    let mut s = servers(&ws);
    let db = by_host(&ws, "db");
    s["servers"].as_object_mut().unwrap().remove(&db);
    s["servers"][&web]["plan"] = "small".into();
    s["servers"]["py-9999"] = serde_json::json!({
        "id": "py-9999", "hostname": "stray", "status": "running", "plan": "small",
        "zone": "py-b", "os": "any", "public_ip": null, "private_ip": null,
        "tags": {"prov:workspace": lineage, "prov:address": "server.stray"},
        "firewall_rules": [], "extra": {}
    });
    s["servers"][&web]["tags"]["role"] = "cache".into();
    std::fs::write(servers_file(&ws), s.to_string()).unwrap();
    let state_before = ws.state();
    let items = drift_items(&ws, &[], 2);
    let want = |a: &str, s: &str, attr: &str| (a.to_string(), s.to_string(), attr.to_string());
    assert!(items.contains(&want("server.db", "gone", "")), "{items:?}");
    assert!(
        items.contains(&want("server.web", "changed", "plan")),
        "{items:?}"
    );
    assert!(
        items.contains(&want("server.stray", "unmanaged", "")),
        "{items:?}"
    );
    assert_eq!(state_before, ws.state(), "drift never writes the state");

    ws.prov(&["destroy", "--auto-approve"])
        .ok()
        .has("destroyed");
    assert_eq!(ws.prov(&["state", "list"]).ok().stdout, "");
    // Only the unmanaged server is left: prov never touches what it does not own.
    let left: Vec<String> = servers(&ws)["servers"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(left, ["py-9999"]);
}

#[test]
fn exec_provider_failures_are_clear_errors() {
    // A provider that exits non-zero: the apply fails naming provider, operation, server,
    // exit code and stderr; nothing half-written.
    let ws = Ws::new(&PYPROV.replace(
        "pyprov = { parallelism = 2 }",
        r#"pyprov = { faults = { "create-server" = "exit" } }"#,
    ));
    install_pyprov(&ws);
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("pyprov: create-server web")
        .has("exit code 3")
        .has("cannot reach the backend");
    assert_eq!(ws.prov(&["state", "list"]).ok().stdout, "");
}

#[test]
fn broken_or_clashing_manifests_exit_1_naming_the_file() {
    let ws = Ws::new(PYPROV);
    let dir = install_pyprov(&ws);
    let manifest = dir.join("manifest.toml");
    std::fs::write(
        &manifest,
        "[extension]\nname = \"pyprov\"\ntype = = \"provider\"\n",
    )
    .unwrap();
    for cmd in [&["plan"][..], &["apply", "--auto-approve"], &["validate"]] {
        ws.prov(cmd)
            .code(1)
            .has("extensions/providers/pyprov/manifest.toml")
            .has("line 3");
    }
    std::fs::write(
        &manifest,
        "[extension]\nname = \"pyprov\"\ntype = \"provider\"\nversion = \"1\"\n",
    )
    .unwrap();
    ws.prov(&["plan"])
        .code(1)
        .has("extensions/providers/pyprov/manifest.toml")
        .has("missing the [exec] section");
    std::fs::write(
        &manifest,
        "[extension]\nname = \"sim\"\ntype = \"provider\"\nversion = \"1\"\n[exec]\ncommand = \"./provider.py\"\n",
    )
    .unwrap();
    ws.prov(&["plan"])
        .code(1)
        .has("extensions/providers/pyprov/manifest.toml")
        .has("already a built-in provider");
    assert!(!ws.dir.join(".prov/state").exists());
}
