//! Ownership: servers are tagged with the state's identity, not the directory's name; adopting,
//! importing and moving records never takes a server that is not this workspace's, and a lost
//! state never silently duplicates the servers its workspace left behind.

use super::*;
use serde_json::{json, Value};

/// A workspace directory named `name` in a temporary directory of its own.
fn dir_named(name: &str, config: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("main.ncl"), config).unwrap();
    (tmp, dir)
}

/// `dir` acts on the simulated cloud of `of` (one cloud account, two workspaces).
fn share_sim(dir: &Path, of: &Path) {
    std::fs::create_dir_all(dir.join(".prov")).unwrap();
    std::fs::create_dir_all(of.join(".prov").join("sim")).unwrap();
    std::os::unix::fs::symlink(of.join(".prov").join("sim"), dir.join(".prov").join("sim"))
        .unwrap();
}

/// Ids of the sim servers called `hostname`.
fn sim_ids(dir: &Path, hostname: &str) -> Vec<String> {
    prov_in(dir, &["sim", "list"], &[])
        .ok()
        .stdout
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f.get(1) == Some(&hostname)).then(|| f[0].to_string())
        })
        .collect()
}

/// As if an apply in `dir` died after the provider created `address` but before recording it:
/// its record becomes a pending create.
fn crash_after_create(dir: &Path, address: &str, env: &[(&str, &str)]) {
    let mut dump: Value =
        serde_json::from_str(&prov_in(dir, &["state", "pull"], env).ok().stdout).unwrap();
    let res = dump["resources"].as_array_mut().unwrap();
    let i = res
        .iter()
        .position(|r| r["record"]["address"] == address)
        .unwrap();
    let rec = res.remove(i)["record"].clone();
    dump["pending"] = json!([
        {"address": address, "operation": "create", "kind": "server", "implementation": "sim",
         "provider_id": null, "spec": {"config": rec["config"], "attributes": rec["attributes"]},
         "dependencies": [], "started_at": 1764000000, "run_id": "crashed"}
    ]);
    std::fs::write(dir.join("crashed.json"), dump.to_string()).unwrap();
    prov_in(dir, &["state", "push", "crashed.json", "--force"], env).ok();
}

#[test]
fn renamed_directory_after_a_crash_adopts_instead_of_duplicating() {
    let (tmp, dir) = dir_named("infra", TWO_SERVERS);
    prov_in(&dir, &["apply", "--auto-approve"], &[]).ok();
    let web = sim_ids(&dir, "web");
    crash_after_create(&dir, "server.web", &[]);
    let renamed = tmp.path().join("infra-renamed");
    std::fs::rename(&dir, &renamed).unwrap();
    prov_in(&renamed, &["plan"], &[])
        .ok()
        .has(&format!("found {}", web[0]))
        .has("will be adopted")
        .lacks("+ server.web");
    prov_in(&renamed, &["apply", "--auto-approve"], &[]).ok();
    assert_eq!(sim_ids(&renamed, "web"), web, "adopted, not duplicated");
    prov_in(&renamed, &["plan", "--detailed-exitcode"], &[]).ok();
}

const WEB_AND_X: &str = r#"
{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a" },
    x = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}
"#;

#[test]
fn workspaces_with_the_same_directory_name_never_adopt_each_others_servers() {
    let (_ta, a) = dir_named("infra", WEB_AND_X);
    let (_tb, b) = dir_named("infra", WEB_AND_X);
    share_sim(&b, &a);
    prov_in(&a, &["apply", "--auto-approve"], &[]).ok();
    let a_web = sim_ids(&a, "web");
    assert_eq!(a_web.len(), 1);

    // b crashed while creating its web: a's web, tagged for the same address by a workspace of
    // the same directory name, is not b's to adopt.
    // (a's x is tagged for b's server.x too: b says it wants its own.)
    prov_in(
        &b,
        &["apply", "--auto-approve", "--target", "server.x"],
        &[],
    )
    .code(1)
    .has("--ignore-tagged");
    prov_in(
        &b,
        &[
            "apply",
            "--auto-approve",
            "--target",
            "server.x",
            "--ignore-tagged",
        ],
        &[],
    )
    .ok();
    prov_in(&b, &["state", "pull", "--out", "b.json"], &[]).ok();
    let mut dump: Value =
        serde_json::from_str(&std::fs::read_to_string(b.join("b.json")).unwrap()).unwrap();
    dump["pending"] = json!([
        {"address": "server.web", "operation": "create", "kind": "server", "implementation": "sim",
         "provider_id": null, "spec": {"config": {}, "attributes": {}},
         "dependencies": [], "started_at": 1764000000, "run_id": "crashed"}
    ]);
    std::fs::write(b.join("b.json"), dump.to_string()).unwrap();
    prov_in(&b, &["state", "push", "b.json", "--force"], &[]).ok();
    prov_in(&b, &["plan"], &[])
        .ok()
        .has("the create never happened")
        .lacks(&format!("found {}", a_web[0]))
        .has("already tagged for addresses this plan creates")
        .has("another workspace, or this one before its state was lost")
        .has("+ server.web");
    // Applying would duplicate the tagged server: refused until the user says which it is.
    let before = prov_in(&b, &["show", "--json"], &[]).ok().stdout;
    prov_in(&b, &["apply", "--auto-approve"], &[])
        .code(1)
        .has("server.web")
        .has(&a_web[0])
        .has("Nothing was applied");
    assert_eq!(prov_in(&b, &["show", "--json"], &[]).ok().stdout, before);
    assert_eq!(sim_ids(&a, "web").len(), 1);
    prov_in(&b, &["apply", "--auto-approve", "--ignore-tagged"], &[]).ok();
    let webs = sim_ids(&a, "web");
    assert_eq!(webs.len(), 2, "b has a web of its own");
    let b_web = prov_in(&b, &["state", "show", "server.web", "--json"], &[])
        .ok()
        .stdout;
    assert!(!b_web.contains(&a_web[0]), "{b_web}");

    // Neither reports the other's server as its own unmanaged one; both have converged.
    for d in [&a, &b] {
        prov_in(d, &["drift"], &[]).ok().lacks("unmanaged");
        prov_in(d, &["plan", "--detailed-exitcode"], &[]).ok();
    }
    // Nor does import take the other's server without --force.
    let id_of = |d: &Path, address: &str| -> String {
        let r: Value = serde_json::from_str(
            &prov_in(d, &["state", "show", address, "--json"], &[])
                .ok()
                .stdout,
        )
        .unwrap();
        r["provider_id"].as_str().unwrap().to_string()
    };
    let (a_x, b_x) = (id_of(&a, "server.x"), id_of(&b, "server.x"));
    prov_in(&b, &["state", "rm", "server.x"], &[]).ok();
    let before = prov_in(&b, &["show", "--json"], &[]).ok().stdout;
    prov_in(&b, &["import", "server.x", &a_x], &[])
        .code(1)
        .has("server.x")
        .has(&a_x)
        .has("tagged by another workspace");
    assert_eq!(prov_in(&b, &["show", "--json"], &[]).ok().stdout, before);
    prov_in(&b, &["import", "server.x", &b_x], &[])
        .ok()
        .has("Imported");
}

#[test]
fn a_lost_state_reports_tagged_servers_and_never_duplicates_them() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let hosts = sim_hosts(&ws);
    std::fs::remove_dir_all(ws.dir.join(".prov").join("state")).unwrap();
    let _ = std::fs::remove_file(ws.dir.join(".prov").join("state.lock"));

    ws.prov(&["plan"])
        .ok()
        .has("Warning: 2 live server(s) are already tagged")
        .has(&format!("server.db: {}", hosts["db"]))
        .has(&format!("server.web: {}", hosts["web"]))
        .has("--adopt");
    // Refused from the plan's own search (made just now), from the providers' answer when the
    // plan did not search (no refresh), and for a saved plan (asked again as of its apply).
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("would duplicate")
        .has(&hosts["web"])
        .has("Nothing was applied");
    ws.prov(&["apply", "--auto-approve", "--refresh=false"])
        .code(1)
        .has("would duplicate")
        .has(&hosts["db"]);
    ws.prov(&["plan", "--refresh=false", "--out", "unsearched.plan"])
        .ok()
        .lacks("already tagged");
    ws.prov(&["apply", "unsearched.plan"])
        .code(1)
        .has("would duplicate")
        .has(&hosts["web"]);
    assert_eq!(sim_hosts(&ws), hosts, "nothing was created");
    ws.prov(&["state", "list"])
        .ok()
        .lacks("server.db")
        .lacks("server.web");

    ws.prov(&["plan", "--adopt"])
        .ok()
        .has("adopted into the state (--adopt)")
        .lacks("+ server.web")
        .lacks("+ server.db");
    ws.prov(&["apply", "--auto-approve", "--adopt"]).ok();
    assert_eq!(sim_hosts(&ws), hosts, "adopted, not duplicated");
    let show = ws
        .prov(&["state", "show", "server.web", "--json"])
        .ok()
        .stdout;
    assert!(show.contains(&hosts["web"]), "{show}");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

const WEBS: &str = r#"
{
  servers = {
    web-01 = { provider = "sim", plan = "small", zone = "sim-a" },
    web-03 = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}
"#;

#[test]
fn import_state_mv_and_push_refuse_what_would_destroy_a_live_server() {
    let ws = Ws::new(WEBS);
    ws.prov(&["apply", "--auto-approve", "--target", "server.web-01"])
        .ok();
    let web01 = sim_hosts(&ws)["web-01"].clone();
    let before = ws.state();
    let refused = |args: &[&str], what: &[&str]| {
        let mut r = ws.prov(args).code(1);
        for w in what {
            r = r.has(w);
        }
        assert_eq!(ws.state(), before, "{args:?} changed the state");
    };
    // The issue's repro: web-01's id imported as web-03 (whose replace would destroy web-01).
    refused(
        &["import", "server.web-03", &web01],
        &["server.web-03", &web01, "already recorded as server.web-01"],
    );
    refused(
        &["import", "server.web-03", "sim-doesnotexist"],
        &["server.web-03", "no server with id \"sim-doesnotexist\""],
    );
    refused(
        &["import", "server.web-99", &web01],
        &["server.web-99", "not declared"],
    );
    refused(&["import", "server.Web 03", &web01], &["Web 03"]);
    refused(
        &["import", "taskserv.web-01.redis", &web01],
        &["taskserv.web-01.redis"],
    );

    // state mv to an address the configuration does not declare: the next apply would destroy it.
    refused(
        &["state", "mv", "server.web-01", "server.web-1"],
        &["server.web-1", "not declared"],
    );
    refused(
        &["state", "mv", "server.web-01", "server..x"],
        &["server..x"],
    );

    // state push of one server under two addresses, a malformed address, a kind mismatch.
    let dump: Value = serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    let push = |edit: &dyn Fn(&mut Value), what: &[&str]| {
        let mut d = dump.clone();
        edit(&mut d);
        std::fs::write(ws.dir.join("edited.json"), d.to_string()).unwrap();
        refused(&["state", "push", "edited.json", "--force"], what);
    };
    let copy_as = |d: &mut Value, address: &str, kind: &str| {
        let res = d["resources"].as_array_mut().unwrap();
        let mut r = res[0].clone();
        r["record"]["address"] = json!(address);
        r["record"]["kind"] = json!(kind);
        res.push(r);
    };
    push(
        &|d| copy_as(d, "server.web-03", "server"),
        &["server.web-03", &web01, "also recorded as server.web-01"],
    );
    push(
        &|d| copy_as(d, "server.Web 03", "server"),
        &["server.Web 03", "malformed address"],
    );
    push(
        &|d| {
            copy_as(d, "cluster.web-03", "server");
            d["resources"][1]["record"]["provider_id"] = json!(null);
        },
        &["cluster.web-03", "names a cluster"],
    );
    // What is allowed still works.
    ws.prov(&["import", "server.web-03", "sim-doesnotexist", "--force"])
        .code(1)
        .has("no server with id");
    ws.prov(&["plan", "--detailed-exitcode"]).code(2);
}

#[test]
fn a_second_checkout_sharing_a_postgresql_state_adopts() {
    let Some(conn) = test_pg() else { return };
    let env = [("PROV_PG_CONN", conn.as_str())];
    let first = pg_ws(
        TWO_SERVERS
            .trim_start()
            .trim_start_matches("let prov = import \"prov/schemas.ncl\" in"),
        "second-checkout",
    );
    let config = std::fs::read_to_string(first.dir.join("main.ncl")).unwrap();
    let (_t, second) = dir_named("checkout-2", &config);
    share_sim(&second, &first.dir);
    first.prov_env(&["apply", "--auto-approve"], &env).ok();
    let web = sim_ids(&first.dir, "web");
    crash_after_create(&first.dir, "server.web", &env);
    prov_in(&second, &["plan"], &env)
        .ok()
        .has(&format!("found {}", web[0]))
        .has("will be adopted")
        .lacks("+ server.web");
    prov_in(&second, &["apply", "--auto-approve"], &env).ok();
    assert_eq!(sim_ids(&second, "web"), web, "adopted, not duplicated");
    first.prov_env(&["plan", "--detailed-exitcode"], &env).ok();
}
