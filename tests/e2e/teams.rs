//! Teams on one state (docs/concurrency.md): applies of disjoint resources run at once, overlapping ones take turns without losing an update, plans run beside them, and a killed apply stops nobody else — on sled and on PostgreSQL.

use super::{
    assert_state_matches_world, command, pg_ws, sim_hosts, spawn, test_pg, wait_running, Ws,
};
use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// `n` sim servers that refer to nothing: any split of them is a split of independent work.
fn independent(n: usize, plan: &str) -> String {
    let mut cfg = String::from("{ servers = {\n");
    for i in 0..n {
        cfg.push_str(&format!(
            "  s{i} = {{ provider = \"sim\", plan = \"{plan}\", zone = \"sim-a\" }},\n"
        ));
    }
    cfg.push_str("} }\n");
    cfg
}

/// The workspace on `backend` ("sled" or "pg"), or None when PostgreSQL is not available.
fn workspace(backend: &str, config: &str, tag: &str) -> Option<Ws> {
    match backend {
        "pg" => {
            test_pg()?;
            Some(pg_ws(config, tag))
        }
        _ => Some(Ws::new(config)),
    }
}

/// Writes an `independent` configuration into `ws`, keeping the backend section it has.
fn rewrite(ws: &Ws, config: &str) {
    let current = std::fs::read_to_string(ws.dir.join("main.ncl")).unwrap();
    let head = &current[..current.find("servers = {").unwrap()];
    ws.write(&config.replacen("{ ", head, 1));
}

/// `--target` flags for servers `range`.
fn targets(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .flat_map(|i| ["--target".to_string(), format!("server.s{i}")])
        .collect()
}

/// Runs `args` in `ws` with `env`, returning its exit code, output and wall time.
fn timed_children(
    ws: &Ws,
    runs: Vec<Vec<String>>,
    env: &[(&str, &str)],
) -> (Duration, Vec<(i32, String, String, Duration)>) {
    let start = Instant::now();
    let children: Vec<_> = runs
        .iter()
        .map(|a| {
            let args: Vec<&str> = a.iter().map(String::as_str).collect();
            let started = Instant::now();
            (spawn(&ws.dir, &args, env), started)
        })
        .collect();
    // Wait for each in its own thread so each one's wall time is its own.
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = children
            .into_iter()
            .map(|(c, started)| {
                s.spawn(move || {
                    let out = c.wait_with_output().unwrap();
                    (
                        out.status.code().unwrap_or(-1),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                        String::from_utf8_lossy(&out.stderr).into_owned(),
                        started.elapsed(),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    (start.elapsed(), results)
}

/// Servers `prov plan --json` (Terraform's shape) still changes.
fn planned_changes(ws: &Ws, extra: &[&str]) -> BTreeSet<String> {
    let mut args = vec!["plan", "--json", "--no-cost"];
    args.extend_from_slice(extra);
    let out = ws.prov(&args).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["resource_changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["change"]["actions"] != serde_json::json!(["no-op"]))
        .map(|c| c["address"].as_str().unwrap().to_string())
        .collect()
}

const EIGHTHS: usize = 8;

/// 1,000 servers; every one changes; eight saved plans of one eighth each, made together
/// (plans lock nothing), then applied together with 200 ms per provider call. All succeed, in
/// about the time of the longest rather than the sum, while plans run beside them; the next
/// plan finds nothing to do and the state matches the world.
fn eight_disjoint_applies(backend: &str) {
    const N: usize = 1000;
    let Some(ws) = workspace(backend, &independent(N, "small"), "eighths") else {
        return;
    };
    let t = Instant::now();
    ws.prov(&["apply", "--auto-approve", "--parallelism", "50"])
        .ok();
    println!("{backend}: created {N} servers in {:?}", t.elapsed());
    rewrite(&ws, &independent(N, "medium"));

    let per = N / EIGHTHS;
    let plans: Vec<Vec<String>> = (0..EIGHTHS)
        .map(|k| {
            let mut a = vec![
                "plan".to_string(),
                "--refresh=changed".to_string(),
                "--out".to_string(),
                format!("part{k}.plan"),
            ];
            a.extend(targets(k * per..(k + 1) * per));
            a
        })
        .collect();
    let (wall, outs) = timed_children(&ws, plans, &[]);
    for (k, (code, out, err, _)) in outs.iter().enumerate() {
        assert_eq!(*code, 0, "plan {k}:\n{out}\n{err}");
    }
    println!("{backend}: 8 plans made together in {wall:?}");

    let applies: Vec<Vec<String>> = (0..EIGHTHS)
        .map(|k| vec!["apply".to_string(), format!("part{k}.plan")])
        .collect();
    let latency = [("PROV_SIM_LATENCY_MS", "200")];
    // Plans beside the applies: none waits for a lock, and each sees a state where the work
    // left only shrinks (a snapshot is before or after each commit, never inside one).
    let watcher = {
        let dir = ws.dir.clone();
        std::thread::spawn(move || {
            let mut seen: Vec<usize> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                let out = command(
                    &dir,
                    &["plan", "--json", "--no-cost", "--refresh=false"],
                    &[],
                )
                .stderr(Stdio::piped())
                .output()
                .unwrap();
                assert!(
                    out.status.success(),
                    "a plan during the applies failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                let left = v["resource_changes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|c| c["change"]["actions"] != serde_json::json!(["no-op"]))
                    .count();
                seen.push(left);
                if left == 0 {
                    break;
                }
            }
            seen
        })
    };
    let (wall, outs) = timed_children(&ws, applies, &latency);
    let mut longest = Duration::ZERO;
    let mut sum = Duration::ZERO;
    for (k, (code, out, err, took)) in outs.iter().enumerate() {
        assert_eq!(*code, 0, "apply {k}:\n{out}\n{err}");
        assert!(
            out.contains(&format!("Apply complete: {per} succeeded")),
            "{out}"
        );
        longest = longest.max(*took);
        sum += *took;
    }
    let seen = watcher.join().unwrap();
    println!(
        "{backend}: 8 disjoint applies of {per} servers each at 200 ms a call: wall {wall:?}, \
         longest {longest:?}, sum {sum:?} ({:.2} x the longest); {} plans ran beside them, \
         changes left: {seen:?}",
        wall.as_secs_f64() / longest.as_secs_f64(),
        seen.len()
    );
    assert!(
        seen.windows(2).all(|w| w[1] <= w[0]),
        "work left only shrinks: {seen:?}"
    );
    // The applies worked at the same time: the windows in which each eighth's servers were
    // changed (the sim world's files) overlap. Under one global lock they would follow one
    // another. Wall times are printed above; how fast is the benchmark's (bench/run
    // --concurrency), not a test's, whose machine may be loaded.
    let windows = eighth_windows(&ws, per);
    let union = union_length(&windows);
    let total: Duration = windows
        .iter()
        .map(|(a, b)| b.duration_since(*a).unwrap_or_default())
        .sum();
    assert!(
        total > union,
        "the eighths were changed one after another (windows {windows:?}), not at once"
    );
    assert!(planned_changes(&ws, &[]).is_empty());
    assert_state_matches_world(&ws);

    // The same work under one global lock would be eight of these, one after another.
    rewrite(&ws, &independent(N, "large"));
    let mut alone = vec![
        "plan".to_string(),
        "--refresh=changed".to_string(),
        "--out".to_string(),
        "alone.plan".to_string(),
    ];
    alone.extend(targets(0..per));
    let (_, outs) = timed_children(&ws, vec![alone], &[]);
    assert_eq!(outs[0].0, 0, "{}", outs[0].2);
    let (alone, outs) = timed_children(
        &ws,
        vec![vec!["apply".to_string(), "alone.plan".to_string()]],
        &latency,
    );
    assert_eq!(outs[0].0, 0, "{}", outs[0].2);
    println!(
        "{backend}: one eighth alone: {alone:?}; eight one after another (a global lock): \
         about {:?}; eight at once: {wall:?} ({:.1} x faster)",
        alone * EIGHTHS as u32,
        (alone * EIGHTHS as u32).as_secs_f64() / wall.as_secs_f64()
    );
}

/// Per eighth of the servers (`s0..` in blocks of `per`), when the sim world's files of its
/// servers were first and last written.
fn eighth_windows(ws: &Ws, per: usize) -> Vec<(std::time::SystemTime, std::time::SystemTime)> {
    let dir = ws.dir.join(".prov/sim/servers");
    let mut windows: Vec<Option<(std::time::SystemTime, std::time::SystemTime)>> =
        vec![None; EIGHTHS];
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let Some(i) = v["hostname"]
            .as_str()
            .and_then(|h| h.strip_prefix('s'))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let t = e.metadata().unwrap().modified().unwrap();
        let w = &mut windows[(i / per).min(EIGHTHS - 1)];
        *w = Some(match *w {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        });
    }
    windows.into_iter().flatten().collect()
}

/// The length of the union of time windows.
fn union_length(windows: &[(std::time::SystemTime, std::time::SystemTime)]) -> Duration {
    let mut w = windows.to_vec();
    w.sort();
    let mut total = Duration::ZERO;
    let mut cur: Option<(std::time::SystemTime, std::time::SystemTime)> = None;
    for (a, b) in w {
        cur = match cur {
            Some((ca, cb)) if a <= cb => Some((ca, cb.max(b))),
            Some((ca, cb)) => {
                total += cb.duration_since(ca).unwrap_or_default();
                Some((a, b))
            }
            None => Some((a, b)),
        };
    }
    if let Some((ca, cb)) = cur {
        total += cb.duration_since(ca).unwrap_or_default();
    }
    total
}

#[test]
fn eight_disjoint_applies_run_at_once_sled() {
    eight_disjoint_applies("sled");
}

#[test]
fn eight_disjoint_applies_run_at_once_pg() {
    eight_disjoint_applies("pg");
}

/// Two saved plans whose servers overlap (s5..s9): applied together, one waits for the other's
/// locks and is then refused as stale, naming the overlapping servers, with nothing lost; without
/// --lock-timeout it fails at once naming the holder. Fresh applies of the same configuration
/// queue, plan again under their locks and both succeed.
fn overlapping_applies(backend: &str) {
    let base = independent(20, "small");
    let Some(ws) = workspace(backend, &base, "overlap") else {
        return;
    };
    ws.prov(&["apply", "--auto-approve"]).ok();
    // A: s0..s9 become medium; B: s5..s14 become large.
    let a_cfg = (0..10).fold(base.clone(), |c, i| {
        c.replace(
            &format!("s{i} = {{ provider = \"sim\", plan = \"small\""),
            &format!("s{i} = {{ provider = \"sim\", plan = \"medium\""),
        )
    });
    let b_cfg = (5..15).fold(base.clone(), |c, i| {
        c.replace(
            &format!("s{i} = {{ provider = \"sim\", plan = \"small\""),
            &format!("s{i} = {{ provider = \"sim\", plan = \"large\""),
        )
    });
    rewrite(&ws, &a_cfg);
    ws.prov(&["plan", "--out", "a.plan"]).ok();
    rewrite(&ws, &b_cfg);
    ws.prov(&["plan", "--out", "b.plan"]).ok();

    let slow = [("PROV_SIM_LATENCY_MS", "400")];
    let mut a = spawn(&ws.dir, &["apply", "a.plan", "--parallelism", "1"], &slow);
    wait_running(&ws);
    // At once: refused, naming the holder and the overlap; plans run meanwhile.
    let err = ws.prov(&["apply", "b.plan"]).code(1).stderr;
    assert!(
        err.contains("locked by") && err.contains(&format!("pid {}", a.id())),
        "{err}"
    );
    assert!(
        err.contains("server.s5") && !err.contains("server.s14"),
        "{err}"
    );
    ws.prov(&["plan", "--refresh=false"]).ok();
    // Waiting: B gets the locks once A is done, and its plan is stale then (A changed s5..s9).
    let b = ws.prov_env(&["apply", "b.plan", "--lock-timeout", "120s"], &slow);
    assert!(a.wait().unwrap().success());
    let b = b.code(1).has("stale").has("server.s5").has("server.s9");
    assert!(!b.stderr.contains("server.s10"), "{}", b.stderr);
    // Nothing of A's was lost: B's configuration planned again shows A's servers moving on.
    let replan = planned_changes(&ws, &[]);
    let expected: BTreeSet<String> = (0..15).map(|i| format!("server.s{i}")).collect();
    assert_eq!(replan, expected, "s0..s4 back to small, s5..s14 to large");
    assert_state_matches_world(&ws);

    // Fresh applies of one configuration, together: the second waits, plans again under the
    // locks it holds and finds the first one's work done; nothing is applied twice.
    let outs: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                &ws.dir,
                &["apply", "--auto-approve", "--lock-timeout", "120s"],
                &slow,
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let applied = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("Apply complete: 15 succeeded"))
        .count();
    assert_eq!(
        applied, 1,
        "one apply made the change, the other found it done"
    );
    assert!(planned_changes(&ws, &[]).is_empty());
    assert_state_matches_world(&ws);
}

#[test]
fn overlapping_applies_serialize_without_lost_updates_sled() {
    overlapping_applies("sled");
}

#[test]
fn overlapping_applies_serialize_without_lost_updates_pg() {
    overlapping_applies("pg");
}

/// Eight disjoint applies creating 20 servers each; one is killed with SIGKILL midway. The
/// others finish; the next plan creates exactly what does not exist (the killed one's pending
/// notes resolved, its locks gone with it), and applying it converges.
fn killed_apply(backend: &str) {
    const N: usize = 160;
    let Some(ws) = workspace(backend, &independent(N, "small"), "killed") else {
        return;
    };
    let per = N / EIGHTHS;
    let slow = [("PROV_SIM_LATENCY_MS", "300")];
    let children: Vec<_> = (0..EIGHTHS)
        .map(|k| {
            let mut args = vec!["apply".to_string(), "--auto-approve".to_string()];
            args.extend(targets(k * per..(k + 1) * per));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            command(&ws.dir, &args, &slow)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Kill the fourth once it has created something.
    let t = Instant::now();
    while !sim_hosts(&ws).keys().any(|h| {
        h[1..]
            .parse::<usize>()
            .is_ok_and(|i| (3 * per..4 * per).contains(&i))
    }) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "apply 3 never created anything"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut children = children;
    children[3].kill().unwrap();
    for (k, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        if k != 3 {
            assert!(
                out.status.success(),
                "apply {k}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let world = sim_hosts(&ws);
    let missing: BTreeSet<String> = (0..N)
        .map(|i| format!("server.s{i}"))
        .filter(|a| !world.contains_key(&a["server.".len()..]))
        .collect();
    assert!(
        !missing.is_empty()
            && missing.iter().all(|a| {
                let i: usize = a["server.s".len()..].parse().unwrap();
                (3 * per..4 * per).contains(&i)
            }),
        "only the killed apply's servers are missing: {missing:?}"
    );
    println!(
        "{backend}: the killed apply left {} of its {per} servers uncreated",
        missing.len()
    );
    assert_eq!(planned_changes(&ws, &[]), missing, "the next plan is exact");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(planned_changes(&ws, &[]).is_empty());
    assert_state_matches_world(&ws);
}

#[test]
fn killed_apply_leaves_the_others_running_sled() {
    killed_apply("sled");
}

#[test]
fn killed_apply_leaves_the_others_running_pg() {
    killed_apply("pg");
}

/// `--refresh=changed` asks only about what the plan changes (and what that depends on): drift
/// elsewhere is left to `prov drift`, which still finds it.
#[test]
fn refresh_changed_asks_only_about_the_change() {
    let ws = Ws::new(&independent(4, "small"));
    ws.prov(&["apply", "--auto-approve"]).ok();
    // Outside prov: s3 is resized.
    ws.prov(&["sim", "set", "s3", "plan", "large"]).ok();
    ws.write(&independent(4, "small").replace(
        "s0 = { provider = \"sim\", plan = \"small\"",
        "s0 = { provider = \"sim\", plan = \"medium\"",
    ));
    assert_eq!(
        planned_changes(&ws, &["--refresh=changed"]),
        ["server.s0".to_string()].into_iter().collect()
    );
    assert_eq!(
        planned_changes(&ws, &[]),
        ["server.s0".to_string(), "server.s3".to_string()]
            .into_iter()
            .collect()
    );
    ws.prov(&["drift"]).code(2).has("server.s3");
    ws.prov(&["plan", "--refresh=sometimes"])
        .code(1)
        .has("expected true");
}

/// Every command beside a running apply: the readers (plan, drift, show, output, state list,
/// pull, history) run at once; `refresh` leaves the apply's running steps alone; `state rm` of
/// a resource it holds fails at once naming it; the apply finishes exactly.
fn commands_beside_a_running_apply(backend: &str) {
    let Some(ws) = workspace(backend, &independent(6, "small"), "beside") else {
        return;
    };
    ws.prov(&["apply", "--auto-approve"]).ok();
    rewrite(&ws, &independent(6, "medium"));
    let mut apply = spawn(
        &ws.dir,
        &["apply", "--auto-approve", "--parallelism", "1"],
        &[("PROV_SIM_LATENCY_MS", "500")],
    );
    wait_running(&ws);
    // First what must meet the apply still running: a write to a resource it holds fails at
    // once naming it, and refresh leaves its running steps alone.
    ws.prov(&["state", "rm", "server.s5"])
        .code(1)
        .has("locked by")
        .has(&format!("pid {}", apply.id()));
    ws.prov(&["refresh"]).ok().has("Nothing pending");
    for args in [
        &["plan", "--refresh=false"][..],
        &["drift"],
        &["show"],
        &["output"],
        &["state", "list"],
        &["state", "pull"],
        &["state", "history", "server.s0"],
    ] {
        let r = ws.prov(args);
        assert!(
            r.code == 0 || (args[0] == "drift" && r.code == 2),
            "{args:?} beside an apply: {}",
            r.stderr
        );
    }
    assert!(apply.wait().unwrap().success());
    assert!(planned_changes(&ws, &[]).is_empty());
    assert_state_matches_world(&ws);
}

#[test]
fn commands_beside_a_running_apply_sled() {
    commands_beside_a_running_apply("sled");
}

#[test]
fn commands_beside_a_running_apply_pg() {
    commands_beside_a_running_apply("pg");
}
