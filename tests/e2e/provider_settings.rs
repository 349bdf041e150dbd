//! Provider settings through their Nickel schemas (docs/providers/settings.md): every problem of
//! a settings record in one run, each naming `providers.NAME.KEY` and where it is declared, exit
//! 1 and nothing written; credentials never echoed; an extension's `schemas/settings.ncl` checks
//! its settings and fills the defaults its program receives.

use super::exec::install_pyprov;
use super::*;

#[test]
fn three_bad_sim_settings_are_three_errors_in_one_run() {
    let ws = Ws::new(
        r#"
{
  providers = {
    sim = { latency_ms = -1, fail_call = 0, read_batch = "many" },
  },
  servers = { web = { provider = "sim", plan = "small", zone = "sim-a" } },
}
"#,
    );
    let before = ws.pulled();
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        let run = ws.prov(cmd).code(1);
        let errors: Vec<&str> = run
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        assert_eq!(errors.len(), 3, "{cmd:?}: {}", run.stderr);
        for (line, key) in errors.iter().zip(["fail_call", "latency_ms", "read_batch"]) {
            assert!(
                line.starts_with("error: ")
                    && line.contains(&format!("main.ncl:4:5: providers.sim.{key}: ")),
                "{key}: {line}"
            );
        }
        assert!(
            run.stderr.contains("providers/src/sim/settings.ncl:"),
            "the schema's line: {}",
            run.stderr
        );
    }
    assert_eq!(ws.pulled(), before, "nothing written");
    assert!(!ws.dir.join(".prov/sim/servers").exists() || sim_is_empty(&ws));
}

fn sim_is_empty(ws: &Ws) -> bool {
    std::fs::read_dir(ws.dir.join(".prov/sim/servers"))
        .map(|d| d.count() == 0)
        .unwrap_or(true)
}

/// A schema in the extension directory: prov checks the settings against it before the program
/// runs (a wrong-typed token is named, never shown) and the program gets the schema's defaults.
#[test]
fn an_exec_providers_schema_checks_its_settings_and_fills_defaults() {
    let cfg = |settings: &str| {
        format!(
            r#"{{
  providers = {{ pyprov = {{ {settings} }} }},
  servers = {{
    web = {{ provider = "pyprov", plan = "small", zone = "py-a" }},
    db = {{ provider = "pyprov", plan = "small", zone = "py-a" }},
  }},
}}"#
        )
    };
    let ws = Ws::new(&cfg(
        "parallelism = 0, fail_hosts = \"web\", token = 424242424242, tokn = \"x\"",
    ));
    let dir = install_pyprov(&ws);
    std::fs::create_dir_all(dir.join("schemas")).unwrap();
    std::fs::write(
        dir.join("schemas/settings.ncl"),
        r#"let prov = import "prov/schemas.ncl" in
{
  parallelism | std.number.PosNat | optional,
  fail_hosts | Array String | default = ["web"],
  token | prov.NonEmptyString | optional,
}
"#,
    )
    .unwrap();
    let run = ws.prov(&["validate"]).code(1);
    for key in ["fail_hosts", "parallelism", "tokn", "token"] {
        assert!(
            run.stderr.contains(&format!("providers.pyprov.{key}: ")),
            "{key}: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr
            .contains("providers.pyprov.tokn: unknown setting"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("424242"), "{}", run.stderr);
    assert!(
        !ws.dir.join(".prov/pyprov").exists(),
        "the program never ran"
    );

    // Valid: the default fail_hosts = ["web"] reaches the program, whose create of web fails.
    ws.write(&cfg("token = \"a-token-string\""));
    ws.prov(&["validate"]).ok();
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("server.web")
        .lacks("a-token-string");
    let servers: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.dir.join(".prov/pyprov/servers.json")).unwrap(),
    )
    .unwrap();
    let hosts: Vec<&str> = servers["servers"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|s| s["hostname"].as_str())
        .collect();
    assert_eq!(hosts, ["db"], "{servers}");
}
