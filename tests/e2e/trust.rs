//! Trust: create_before_destroy never leaks the old object (deposed objects, kill trials on sled
//! and PostgreSQL), and a recorded prevent_destroy outlives its configuration block.

use super::{chained_servers, command, pg_ws, prov_in, test_pg, Rng, Run, Ws};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;

/// Every server in the sim world: (id, hostname).
fn sim_servers(ws: &Ws, env: &[(&str, &str)]) -> Vec<(String, String)> {
    ws.prov_env(&["sim", "list"], env)
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[0].to_string(), f[1].to_string())
        })
        .collect()
}

/// What the state knows, from `state pull`: current ids by address, deposed ids by address, and
/// the addresses with a pending operation.
struct Known {
    current: BTreeMap<String, String>,
    deposed: BTreeMap<String, BTreeSet<String>>,
    pending: BTreeSet<String>,
}

fn known(ws: &Ws, env: &[(&str, &str)]) -> Known {
    let pulled: Value = serde_json::from_str(&ws.prov_env(&["state", "pull"], env).ok().stdout)
        .expect("state pull prints JSON");
    let mut k = Known {
        current: BTreeMap::new(),
        deposed: BTreeMap::new(),
        pending: BTreeSet::new(),
    };
    for r in pulled["resources"].as_array().unwrap() {
        let r = &r["record"];
        let addr = r["address"].as_str().unwrap().to_string();
        if let Some(id) = r["provider_id"].as_str() {
            k.current.insert(addr.clone(), id.to_string());
        }
        for d in r["deposed"].as_array().into_iter().flatten() {
            k.deposed
                .entry(addr.clone())
                .or_default()
                .insert(d["provider_id"].as_str().unwrap().to_string());
        }
    }
    for p in pulled["pending"].as_array().unwrap() {
        k.pending.insert(p["address"].as_str().unwrap().to_string());
    }
    k
}

/// Nothing leaked: every server in the world is the current or a deposed object of its
/// address, or its address has a pending operation (resolved by the next run).
fn assert_nothing_unknown(ws: &Ws, env: &[(&str, &str)], when: &str) {
    let k = known(ws, env);
    for (id, host) in sim_servers(ws, env) {
        let addr = format!("server.{host}");
        let ok = k.current.get(&addr) == Some(&id)
            || k.deposed.get(&addr).is_some_and(|d| d.contains(&id))
            || k.pending.contains(&addr);
        assert!(
            ok,
            "{when}: {addr} ({id}) exists but the state forgot it (neither current, deposed nor pending)"
        );
    }
}

/// Converged: exactly one server per address, the one recorded, nothing deposed or pending,
/// and the plan has nothing to do.
fn assert_converged(ws: &Ws, env: &[(&str, &str)], n: usize, when: &str) {
    let k = known(ws, env);
    assert!(
        k.deposed.is_empty(),
        "{when}: still deposed: {:?}",
        k.deposed
    );
    assert!(
        k.pending.is_empty(),
        "{when}: still pending: {:?}",
        k.pending
    );
    let world = sim_servers(ws, env);
    assert_eq!(world.len(), n, "{when}: the world has {world:?}");
    for (id, host) in world {
        assert_eq!(
            k.current.get(&format!("server.{host}")),
            Some(&id),
            "{when}: server.{host}"
        );
    }
    ws.prov_env(&["plan", "--detailed-exitcode"], env)
        .ok()
        .has("No changes.");
}

const PAIR: &str = r#"{ providers = { sim = { defaults = { zone = "ZONE" } FAIL } }, servers = {
  a = { provider = "sim", plan = "small", lifecycle = { create_before_destroy = true } },
  b = { provider = "sim", plan = "small", tags = { peer = "${server.a.private_ip}" },
        lifecycle = { create_before_destroy = true } },
} }"#;

fn pair(zone: &str, fail: &str) -> String {
    PAIR.replace("ZONE", zone).replace("FAIL", fail)
}

/// The issue's repro: kill -9 as soon as "server.b: creating" is printed. The old `a` is
/// deposed in the commit that gave `server.a` its new server; the plan says it destroys it; the
/// next apply does; nothing is left behind.
#[test]
fn killed_create_before_destroy_deposes_the_old_server() {
    let ws = Ws::new(&pair("sim-a", ""));
    ws.prov(&["apply", "--auto-approve"]).ok();
    let old_a = known(&ws, &[]).current["server.a"].clone();
    ws.write(&pair("sim-b", ""));
    let mut child = command(
        &ws.dir,
        &["apply", "--auto-approve"],
        &[("PROV_SIM_LATENCY_MS", "1000")],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let out = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufReader::new(out).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains("server.b: creating") {
            break;
        }
    }
    assert!(seen.contains("server.b: creating"), "{seen}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_nothing_unknown(&ws, &[], "after the kill");
    let k = known(&ws, &[]);
    assert!(
        k.deposed["server.a"].contains(&old_a),
        "the old a is deposed: {:?}",
        k.deposed
    );
    ws.prov(&["plan"])
        .ok()
        .has(&format!("- server.a (deposed {old_a})"))
        .has("will be destroyed");
    // The plan in Terraform's JSON shape names the deposed object too.
    let shown: Value = serde_json::from_str(&ws.prov(&["plan", "--json"]).ok().stdout).unwrap();
    assert!(
        shown["resource_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["deposed"] == old_a.as_str() && c["change"]["actions"][0] == "delete"),
        "{shown}"
    );
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(
        !sim_servers(&ws, &[]).iter().any(|(id, _)| id == &old_a),
        "the old a is gone"
    );
    assert_converged(&ws, &[], 2, "after the second apply");
}

/// An ordinary failed create (b's) leaves a's old server deposed, not leaked; a SIGTERM too.
#[test]
fn failed_or_terminated_create_before_destroy_leaks_nothing() {
    let ws = Ws::new(&pair("sim-a", ""));
    ws.prov(&["apply", "--auto-approve"]).ok();
    let old_a = known(&ws, &[]).current["server.a"].clone();
    // Calls of the replace: create a (1), create b (2, fails).
    ws.write(&pair("sim-b", ", fail_call = 2"));
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("injected failure");
    assert_nothing_unknown(&ws, &[], "after the failed create");
    assert!(known(&ws, &[]).deposed["server.a"].contains(&old_a));
    ws.write(&pair("sim-b", ""));
    ws.prov(&["plan"])
        .ok()
        .has(&format!("- server.a (deposed {old_a})"));
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_converged(&ws, &[], 2, "after the failed create's rerun");

    // SIGTERM while b is being created: running steps finish, nothing starts, nothing leaks.
    ws.write(&pair("sim-a", ""));
    let mut child = command(
        &ws.dir,
        &["apply", "--auto-approve"],
        &[("PROV_SIM_LATENCY_MS", "700")],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let out = child.stdout.take().unwrap();
    for line in std::io::BufReader::new(out).lines() {
        if line.unwrap().contains("server.b: creating") {
            break;
        }
    }
    libc_kill(child.id() as i32, libc::SIGTERM);
    child.wait().unwrap();
    assert_nothing_unknown(&ws, &[], "after SIGTERM");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_converged(&ws, &[], 2, "after SIGTERM's rerun");

    // A deposed object whose delete fails stays deposed (no pending note needed) and goes next time.
    ws.write(&pair("sim-b", ", fail_call = 3"));
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("injected failure");
    assert_nothing_unknown(&ws, &[], "after the failed delete");
    assert!(!known(&ws, &[]).deposed.is_empty());
    ws.write(&pair("sim-b", ""));
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_converged(&ws, &[], 2, "after the failed delete's rerun");
}

fn libc_kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped yet.
    unsafe { libc::kill(pid, sig) };
}

/// `n` servers in chains of ten (server i tags server i-10's private IP), all
/// create_before_destroy, zone from the provider default.
fn cbd_servers(n: usize, zone: &str) -> String {
    chained_servers(
        n,
        &format!("providers = {{ sim = {{ defaults = {{ zone = \"{zone}\" }} }} }}, "),
        ", lifecycle = { create_before_destroy = true }",
    )
}

/// Kill trials over create_before_destroy replaces of `n` servers: SIGKILL (or SIGTERM) at a
/// random moment of an apply that replaces every server; after each, nothing the state forgot
/// exists; a plain apply then converges with nothing leaked, deposed or pending.
fn cbd_kill_trials(ws: &Ws, env: &[(&str, &str)], n: usize, trials: usize) {
    let run = |args: &[&str]| -> Run { prov_in(&ws.dir, args, env) };
    // Keep the workspace's backend block (PostgreSQL) when rewriting its configuration.
    let orig = std::fs::read_to_string(ws.dir.join("main.ncl")).unwrap();
    let backend = orig.find("backend = {").map(|i| {
        let end = i + orig[i..].find("},").unwrap() + 2;
        orig[i..end].to_string()
    });
    let config = |zone: &str| match &backend {
        Some(b) => cbd_servers(n, zone).replacen('{', &format!("{{ {b}"), 1),
        None => cbd_servers(n, zone),
    };
    run(&["apply", "--auto-approve"]).ok();
    let mut rng = Rng::new();
    let mut kills = 0;
    for t in 0..trials {
        let zone = if t % 2 == 0 { "sim-b" } else { "sim-a" };
        ws.write(&config(zone));
        assert_eq!(
            backend.is_some(),
            env.iter().any(|(k, _)| *k == "PROV_PG_CONN")
        );
        let mut with_latency: Vec<(&str, &str)> = env.to_vec();
        with_latency.push(("PROV_SIM_LATENCY_MS", "100"));
        // Replace every server, whatever an earlier kill left done.
        let replace: Vec<String> = (0..n).map(|i| format!("server.s{i}")).collect();
        let mut args = vec!["apply", "--auto-approve"];
        for a in &replace {
            args.extend(["--replace", a.as_str()]);
        }
        let mut child = command(&ws.dir, &args, &with_latency)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100 + rng.below(1400)));
        if child.try_wait().unwrap().is_none() {
            let sig = if rng.below(4) == 0 {
                libc::SIGTERM
            } else {
                libc::SIGKILL
            };
            libc_kill(child.id() as i32, sig);
            kills += 1;
        }
        child.wait().unwrap();
        assert_nothing_unknown(ws, env, &format!("trial {t}"));
        // Half the trials converge at once; the others are killed again mid-recovery first.
        if t % 2 == 1 {
            run(&["apply", "--auto-approve"]).ok();
            assert_converged(ws, env, n, &format!("trial {t}"));
        }
    }
    run(&["apply", "--auto-approve"]).ok();
    assert_converged(ws, env, n, "the end");
    println!("{kills} of {trials} trials interrupted a running apply");
    assert!(
        kills * 4 >= trials * 3,
        "most trials interrupt an apply ({kills} of {trials})"
    );
}

#[test]
fn create_before_destroy_kill_trials_on_sled_leak_nothing() {
    let ws = Ws::new(&cbd_servers(60, "sim-a"));
    cbd_kill_trials(&ws, &[], 60, 16);
}

#[test]
fn create_before_destroy_kill_trials_on_postgresql_leak_nothing() {
    let Some(conn) = test_pg() else { return };
    let ws = pg_ws(&cbd_servers(60, "sim-a"), "cbd-kill");
    cbd_kill_trials(&ws, &[("PROV_PG_CONN", conn.as_str())], 60, 16);
}

/// prevent_destroy is recorded with the resource: removing the block (or the setting) does not
/// lift it; `prov state unprotect` does.
#[test]
fn recorded_protection_outlives_its_configuration() {
    let protected = r#"{ servers = {
      db = { provider = "sim", plan = "small", zone = "sim-a", lifecycle = { prevent_destroy = true } },
      web = { provider = "sim", plan = "small", zone = "sim-a" },
    } }"#;
    let ws = Ws::new(protected);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["state", "show", "server.db"])
        .ok()
        .has("protected");
    let before = ws.state();
    // The whole block removed: refused, with how to lift it.
    ws.write(r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a" } } }"#);
    for args in [
        &["plan"][..],
        &["apply", "--auto-approve"],
        &["destroy", "--auto-approve"],
    ] {
        ws.prov(args)
            .code(1)
            .has("server.db")
            .has("prov state unprotect server.db");
    }
    // The setting removed and a replacing change: refused too.
    ws.write(
        r#"{ servers = {
      db = { provider = "sim", plan = "small", zone = "sim-b" },
      web = { provider = "sim", plan = "small", zone = "sim-a" },
    } }"#,
    );
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("prov state unprotect server.db");
    assert_eq!(ws.state(), before, "nothing was changed");
    assert_eq!(sim_servers(&ws, &[]).len(), 2);
    // Lifted explicitly: now the replace goes through, and the record is no longer protected.
    ws.prov(&["state", "unprotect", "server.db"])
        .ok()
        .has("Lifted");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["state", "show", "server.db"])
        .ok()
        .lacks("protected");
    ws.prov(&["state", "unprotect", "server.nope"])
        .code(1)
        .has("not in the state");
}

/// A protection added to an unchanged resource is recorded by the next apply (the plan says
/// so), so removing the block afterwards cannot destroy it either.
#[test]
fn protection_added_to_an_unchanged_resource_is_recorded() {
    let plain = r#"{ servers = { db = { provider = "sim", plan = "small", zone = "sim-a" } } }"#;
    let ws = Ws::new(plain);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(&plain.replace(
        "zone = \"sim-a\"",
        "zone = \"sim-a\", lifecycle = { prevent_destroy = true }",
    ));
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("prevent_destroy will be kept in the state");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    ws.prov(&["state", "show", "server.db"])
        .ok()
        .has("protected");
    ws.write("{ servers = {} }");
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("prov state unprotect server.db");
    assert_eq!(sim_servers(&ws, &[]).len(), 1);
}
