//! `prov plan --untrusted` (pull requests): taskserv status scripts do not run and the plan says what it did not check, extension provider programs are refused (for servers declared, recorded or left pending), imports cannot leave the workspace, and a saved untrusted plan cannot be applied.

use super::*;

/// The quickstart workspace (local servers, extension taskservs with scripts), whose `motd`
/// status script also writes `marker`.
fn quickstart_with_marker(marker: &Path) -> Ws {
    let ws = Ws::new("");
    copy_example(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")),
        &ws.dir,
    );
    let status = ws.dir.join("extensions/taskservs/motd/scripts/status.sh");
    let body = std::fs::read_to_string(&status).unwrap();
    std::fs::write(
        &status,
        format!("echo ran >> '{}'\n{body}", marker.display()),
    )
    .unwrap();
    ws
}

#[test]
fn untrusted_plan_runs_no_status_script_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("status-ran");
    let ws = quickstart_with_marker(&marker);
    ws.prov(&["apply", "--auto-approve"]).ok();

    // A normal plan asks each taskserv's status script: the marker proves it runs.
    let _ = std::fs::remove_file(&marker);
    ws.prov(&["plan"]).ok().has("No changes.");
    assert!(marker.exists(), "a trusted plan runs the status scripts");
    std::fs::remove_file(&marker).unwrap();

    // Untrusted: no script runs, and the plan names what it did not check.
    let r = ws
        .prov(&["plan", "--untrusted", "--out", "pr.plan"])
        .ok()
        .has("No changes.")
        .has("Untrusted plan: refreshed through provider APIs only")
        .has("taskserv.db-01.motd")
        .has("taskserv.web-01.heartbeat");
    assert!(
        !marker.exists(),
        "an untrusted plan ran a status script:\n{}",
        r.stdout
    );
    let v: serde_json::Value =
        serde_json::from_str(&ws.prov(&["plan", "--untrusted", "--json"]).ok().stdout).unwrap();
    assert_eq!(v["prov"]["untrusted"], true);
    let unrefreshed = v["prov"]["unrefreshed"].as_array().unwrap();
    assert!(
        unrefreshed.contains(&serde_json::json!("taskserv.web-01.motd")),
        "{v:#}"
    );
    assert!(!unrefreshed
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("server.")));
    assert!(!marker.exists());

    // The saved plan says so too, and is for review only.
    ws.prov(&["show", "pr.plan"]).ok().has("Untrusted plan");
    let before = ws.pulled();
    ws.prov(&["apply", "pr.plan"])
        .code(1)
        .has("was made with --untrusted");
    assert_eq!(ws.pulled(), before);
    assert!(!marker.exists());
}

#[test]
fn untrusted_plan_refuses_provider_programs_and_imports_outside_the_workspace() {
    // An exec provider is a program from the repository: refused, never run.
    let tmp = tempfile::tempdir().unwrap();
    let marker = tmp.path().join("provider-ran");
    let ws = Ws::new(
        r#"{ servers = { web = { provider = "pyprov", plan = "small", zone = "py-a" } } }"#,
    );
    let dir = ws.dir.join("extensions/providers/pyprov");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("manifest.toml"),
        "[extension]\nname = \"pyprov\"\ntype = \"provider\"\nversion = \"0.1.0\"\n\n[exec]\ncommand = \"./run.sh\"\n",
    )
    .unwrap();
    let run = dir.join("run.sh");
    std::fs::write(
        &run,
        format!("#!/bin/sh\ntouch '{}'\nexit 1\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&run, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("server.web")
        .has("uses the provider extension pyprov")
        .has("untrusted plan does not run");
    assert!(!marker.exists());

    // Imports: files outside the workspace, however they are named, are refused before Nickel
    // reads them.
    let outside = tmp.path().join("secret.txt");
    std::fs::write(&outside, "runner-secret-51").unwrap();
    let ws = Ws::new(&format!(
        r#"{{ servers = {{ web = {{ provider = "sim", plan = "small", zone = "sim-a",
              tags = {{ x = import "{}" as 'Text }} }} }} }}"#,
        outside.display()
    ));
    ws.prov(&["plan"]).ok().has("runner-secret-51");
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("outside the workspace")
        .lacks("runner-secret-51");
    std::os::unix::fs::symlink(&outside, ws.dir.join("link.txt")).unwrap();
    ws.write(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a", tags = { x = import "link.txt" as 'Text } } } }"#);
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("link.txt")
        .lacks("runner-secret-51");
    ws.write(&format!(
        "{{ servers = {{ web = {{ provider = \"sim\", plan = \"small\", zone = \"sim-a\", tags = {{ x = import m%\"{}\"% as 'Text }} }} }} }}",
        outside.display()
    ));
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("main.ncl:1")
        .has("not a plain")
        .lacks("runner-secret-51");
    // Inside the workspace, imports work as always.
    std::fs::write(ws.dir.join("tags.ncl"), "{ team = \"web\" }").unwrap();
    ws.write(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a", tags = import "tags.ncl" } } }"#);
    ws.prov(&["plan", "--untrusted"]).ok().has("+ server.web");
}

/// A pull request that removes a server of a provider extension and changes the provider's
/// program: the state still records the server, and refreshing it, pricing it or settling its
/// pending operation would run the changed program. The untrusted plan refuses instead; the
/// program never runs.
#[test]
fn untrusted_plan_refuses_servers_recorded_with_provider_programs() {
    let ws = Ws::new(
        r#"{ servers = {
  web = { provider = "sim", plan = "small", zone = "sim-a" },
  ext = { provider = "pyprov", plan = "small", zone = "pyprov-a" },
} }"#,
    );
    ws.prov(&["extension", "new", "provider", "pyprov"]).ok();
    std::fs::create_dir_all(ws.dir.join("extensions/providers")).unwrap();
    std::fs::rename(
        ws.dir.join("pyprov"),
        ws.dir.join("extensions/providers/pyprov"),
    )
    .unwrap();
    ws.prov(&["apply", "--auto-approve"]).ok();

    let marker = ws.dir.join("provider-ran");
    let program = ws.dir.join("extensions/providers/pyprov/provider.py");
    let body = std::fs::read_to_string(&program).unwrap();
    let (shebang, rest) = body.split_once('\n').unwrap();
    std::fs::write(
        &program,
        format!(
            "{shebang}\nopen({:?}, 'a').write('ran\\n')\n{rest}",
            marker.display().to_string()
        ),
    )
    .unwrap();
    // Declared and recorded: named once, as declared.
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("server.ext")
        .has("uses the provider extension pyprov")
        .lacks("is recorded with");
    assert!(!marker.exists(), "the repository's provider program ran");
    ws.write(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a" } } }"#);
    ws.prov(&["plan", "--untrusted"])
        .code(1)
        .has("server.ext")
        .has("is recorded with the provider extension pyprov")
        .has("untrusted plan does not run");
    assert!(!marker.exists(), "the repository's provider program ran");
    // A trusted plan runs it, as it always did.
    ws.prov(&["plan"]).ok().has("- server.ext");
    assert!(marker.exists());
}
