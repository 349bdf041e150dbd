//! What validate and plan accept, apply can carry out (issue 11, items 11 and 12): misspelt
//! attributes in references and outputs, `ignore_changes` paths that match nothing and
//! referenced taskserv settings are refused before anything runs; a failed create leaves
//! nothing destroy cannot remove; computed attributes changed outside prov (sim) are drift, and
//! what references them is updated.

use super::*;

/// The sim world's server files: `(hostname, whole JSON)`.
fn sim_servers(ws: &Ws) -> Vec<(String, serde_json::Value)> {
    let Ok(dir) = std::fs::read_dir(ws.dir.join(".prov/sim/servers")) else {
        return Vec::new();
    };
    dir.filter_map(|e| {
        let p = e.ok()?.path();
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).ok()?).ok()?;
        Some((v["hostname"].as_str()?.to_string(), v))
    })
    .collect()
}

/// 23 resources: db-01 and its taskserv, ten app servers with a taskserv each referring to
/// db-01 correctly, and one load balancer whose reference misspells the attribute.
fn typo_config(attr: &str) -> String {
    let mut s = String::from(
        "{\n  servers = {\n    db-01 = { provider = \"sim\", plan = \"small\", zone = \"sim-a\",\n              taskservs = { redis = { version = \"1.0.0\" } } },\n",
    );
    for i in 1..=10 {
        s.push_str(&format!(
            "    app-{i:02} = {{ provider = \"sim\", plan = \"small\", zone = \"sim-a\", tags = {{ db = \"${{server.db-01.private_ip}}\" }},\n              taskservs = {{ app = {{ version = \"1.0.0\" }} }} }},\n"
        ));
    }
    s.push_str(&format!(
        "    lb = {{ provider = \"sim\", plan = \"small\", zone = \"sim-a\",\n           tags = {{ db = \"${{server.db-01.{attr}}}\" }} }},\n  }},\n}}\n"
    ));
    s
}

#[test]
fn a_misspelt_attribute_is_a_validate_error_and_nothing_is_applied() {
    let ws = Ws::new(&typo_config("privte_ip"));
    let before = ws.state();
    // lb is declared on line 25 of main.ncl.
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        ws.prov(cmd)
            .code(1)
            .has("server.lb")
            .has("main.ncl:25:")
            .has("tags.db refers to ${server.db-01.privte_ip}")
            .has("server.db-01 has no attribute \"privte_ip\"")
            .has("private_ip")
            .lacks("panicked");
    }
    assert_eq!(ws.state(), before);
    assert!(sim_servers(&ws).is_empty(), "nothing was created");

    // Corrected, all 23 apply.
    ws.write(&typo_config("private_ip"));
    ws.prov(&["validate"]).ok();
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("23 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

#[test]
fn outputs_and_ignore_changes_naming_nothing_are_validate_errors() {
    let ws = Ws::new(
        r#"{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a", tags = { env = "prod" },
            lifecycle = { ignore_changes = ["tags.env", "tags.owner", "tagz"] } },
  },
  outputs = { ip = "${server.web.public_ipp}", env = "${server.web.tags.env}", id = "${server.web.id}" },
}"#,
    );
    let before = ws.state();
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        ws.prov(cmd)
            .code(1)
            .has("outputs.ip refers to ${server.web.public_ipp}")
            .has("server.web has no attribute \"public_ipp\"")
            .has("server.web")
            .has(
                "lifecycle.ignore_changes names \"tagz\", which matches no attribute of server.web",
            )
            .lacks("tags.owner\", which")
            .lacks("outputs.env")
            .lacks("outputs.id");
    }
    assert_eq!(ws.state(), before);
    assert!(sim_servers(&ws).is_empty());
}

#[test]
fn referenced_taskserv_settings_are_checked_at_plan() {
    let cfg = |settings: &str| {
        format!(
            r#"{{ servers = {{ db = {{ provider = "sim", plan = "small", zone = "sim-a", tags = {{ port = "six" }},
                 taskservs = {{ redis = {{ implementation = "redis", settings = {settings} }} }} }} }} }}"#
        )
    };
    // A reference whose value has the wrong type for the schema: refused before anything runs.
    let ws = Ws::new(&cfg(r#"{ port = "${server.db.tags.port}" }"#));
    for cmd in [&["validate"][..], &["plan"]] {
        ws.prov(cmd)
            .code(1)
            .has("taskserv.db.redis")
            .has("redis/schemas/settings.ncl");
    }
    // A misspelt setting next to a reference to a computed attribute.
    ws.write(&cfg(r#"{ bnd = "${server.db.private_ip}" }"#));
    ws.prov(&["validate"]).code(1).has("bnd");
    // Well-typed references pass.
    ws.write(&cfg(
        r#"{ bind = "${server.db.private_ip}", maxmemory = "${server.db.plan}" }"#,
    ));
    ws.prov(&["validate"]).ok();
    ws.prov(&["plan"]).ok();
    assert!(sim_servers(&ws).is_empty());
}

#[test]
fn a_server_left_behind_by_a_failed_create_is_recorded_and_destroyed() {
    let ws =
        Ws::new(r#"{ servers = { x = { provider = "sim", plan = "small", zone = "sim-a" } } }"#);
    ws.prov_env(
        &["apply", "--auto-approve"],
        &[("PROV_SIM_FAIL_SERVERS", "x")],
    )
    .code(1)
    .has("failed: server.x");
    // The create failed after the server came up (as a cloud's wait can): a server carrying
    // this workspace's ownership tags for server.x exists.
    ws.prov(&["sim", "add-unmanaged", "x"]).ok();
    ws.prov(&["sim", "set", "x", "tags.prov:address", "server.x"])
        .ok();
    ws.prov(&["plan"]).ok().has("the create went through");
    ws.prov(&["refresh"]).ok();
    ws.prov(&["state", "list"]).ok().has("server.x");
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(sim_servers(&ws).is_empty(), "{:?}", sim_servers(&ws));

    // Without a server left behind the note is cleared.
    ws.prov_env(
        &["apply", "--auto-approve"],
        &[("PROV_SIM_FAIL_SERVERS", "x")],
    )
    .code(1);
    ws.prov(&["plan"]).ok().has("the create never happened");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

const APP_AND_LB: &str = r#"{
  servers = {
    app-01 = { provider = "sim", plan = "small", zone = "sim-a" },
    lb = { provider = "sim", plan = "small", zone = "sim-a", tags = { backend = "${server.app-01.private_ip}" } },
  },
  outputs = { app = "${server.app-01.private_ip}" },
}"#;

/// The record as `prov state show ADDR --json` prints it (attributes and outputs apart).
fn record(ws: &Ws, addr: &str) -> serde_json::Value {
    serde_json::from_str(&ws.prov(&["state", "show", addr, "--json"]).ok().stdout).unwrap()
}

#[test]
fn a_computed_attribute_changed_outside_prov_updates_what_references_it() {
    let ws = Ws::new(APP_AND_LB);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["sim", "set", "app-01", "private_ip", "10.0.0.42"])
        .ok();

    let items = drift_items(&ws, &[], 2);
    assert_eq!(
        items,
        vec![(
            "server.app-01".to_string(),
            "changed".to_string(),
            "private_ip".to_string()
        )]
    );
    ws.prov(&["plan", "--refresh-only", "--detailed-exitcode"])
        .code(2)
        .has("private_ip")
        .has("10.0.0.42");
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.lb")
        .has("10.0.0.42");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        record(&ws, "server.app-01")["outputs"]["private_ip"],
        "10.0.0.42"
    );
    assert_eq!(
        record(&ws, "server.lb")["attributes"]["tags"]["backend"],
        "10.0.0.42"
    );
    let lb = sim_servers(&ws)
        .into_iter()
        .find(|(h, _)| h == "lb")
        .unwrap()
        .1;
    assert_eq!(lb["tags"]["backend"], "10.0.0.42");
    ws.prov(&["output", "app"]).ok().has("10.0.0.42");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    ws.prov(&["drift"]).ok();

    // Accepted with refresh-only first, the next plan updates the load balancer as well.
    ws.prov(&["sim", "set", "app-01", "private_ip", "10.0.0.43"])
        .ok();
    ws.prov(&["apply", "--refresh-only", "--auto-approve"]).ok();
    assert_eq!(
        record(&ws, "server.app-01")["outputs"]["private_ip"],
        "10.0.0.43"
    );
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.lb");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        record(&ws, "server.lb")["attributes"]["tags"]["backend"],
        "10.0.0.43"
    );
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}
