//! Write cost versus state size: writes 10,000 records one commit each (durable, like apply does
//! per finished step) and reports the mean cost of one commit at 100 and at 10,000 existing
//! records, for sled and, when `PROV_TEST_PG` is set, PostgreSQL. A commit must cost O(1) in the
//! state's size (never a rewrite of the whole state, opentofu#578), so the ratio must stay within
//! 1.5x; the process exits 1 when it does not.
//!
//! Run: `cargo bench -p prov-state --bench writes` (PostgreSQL: start a server first, see
//! state/tests/start-pg.sh). `PROV_BENCH_RECORDS` changes the size.

use std::time::{Duration, Instant};

use prov_state::{Change, OpenOptions, PgStore, ResourceRecord, SledStore, StateStore};
use serde_json::json;

/// Commits measured at each size; wide enough to average out fsync jitter.
const WINDOW: usize = 200;
const SMALL: usize = 100;
const MAX_RATIO: f64 = 1.5;

fn rec(i: usize, generation: u64) -> ResourceRecord {
    let address = format!("server.web-{i:05}");
    ResourceRecord {
        address: address.clone(),
        kind: "server".into(),
        implementation: "sim".into(),
        provider_id: Some(format!("sim-{i:08x}")),
        config: json!({
            "plan": "small", "zone": "z1", "os": "ubuntu-22.04",
            "tags": {"peer": "${server.web-00000.private_ip}", "team": "infra"},
            "firewall_rules": [{"direction": "ingress", "protocol": "tcp", "port": "22"}],
        }),
        attributes: json!({
            "plan": "small", "zone": "z1", "os": "ubuntu-22.04",
            "tags": {"peer": "10.0.0.1", "team": "infra"},
            "firewall_rules": [{"direction": "ingress", "protocol": "tcp", "port": "22"}],
        }),
        outputs: json!({"public_ip": "203.0.113.7", "private_ip": format!("10.0.{}.{}", i / 250, i % 250), "gen": generation}),
        dependencies: vec!["server.web-00000".into()],
        updated_at: 1_795_615_387,
        sensitive_paths: Vec::new(),
    }
}

struct Stats {
    mean: Duration,
    median: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    Stats {
        mean: v.iter().sum::<Duration>() / v.len() as u32,
        median: v[v.len() / 2],
    }
}

/// Writes `n` + `WINDOW` records one commit each, then `WINDOW` updates at full size; returns
/// whether the O(1) check held.
fn bench(name: &str, store: &dyn StateStore, n: usize) -> bool {
    let (mut small, mut large) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 0..n + WINDOW {
        let change = [Change::Put(rec(i, 1))];
        let t = Instant::now();
        store.commit(&change).unwrap();
        let d = t.elapsed();
        if (SMALL..SMALL + WINDOW).contains(&i) {
            small.push(d);
        } else if i >= n {
            large.push(d);
        }
    }
    let total = started.elapsed();
    // Updates replace a record, so they also write its history entry.
    let mut updates = Vec::new();
    for k in 0..WINDOW {
        let change = [Change::Put(rec(k * 37 % n, 2))];
        let t = Instant::now();
        store.commit(&change).unwrap();
        updates.push(t.elapsed());
    }
    let (s, l, u) = (stats(small), stats(large), stats(updates));
    let ratio = l.mean.as_secs_f64() / s.mean.as_secs_f64();
    let ok = ratio <= MAX_RATIO;
    println!(
        "{name}: one-record commit, mean (median) of {WINDOW}: at {SMALL} existing {:?} ({:?}), \
         at {n} existing {:?} ({:?}); ratio {ratio:.2} {}",
        s.mean,
        s.median,
        l.mean,
        l.median,
        if ok {
            "ok (<= 1.5)"
        } else {
            "TOO HIGH (> 1.5)"
        }
    );
    println!(
        "{name}: update commit (keeps the replaced version) at {n} existing: mean {:?} \
         (median {:?}); {} commits took {total:?} in all",
        u.mean,
        u.median,
        n + WINDOW
    );
    ok
}

fn main() {
    let n: usize = std::env::var("PROV_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    assert!(
        n >= SMALL + WINDOW,
        "PROV_BENCH_RECORDS must be at least {}",
        SMALL + WINDOW
    );
    let mut ok = true;

    let tmp = tempfile::tempdir().unwrap();
    let sled = SledStore::open(&tmp.path().join("state"), &OpenOptions::new("bench")).unwrap();
    ok &= bench("sled", &sled, n);
    drop(sled);

    match std::env::var("PROV_TEST_PG") {
        Ok(url) if !url.is_empty() => {
            let workspace = format!("bench-{}", std::process::id());
            let pg = PgStore::open(&url, &workspace, &OpenOptions::new("bench")).unwrap();
            ok &= bench("postgres", &pg, n);
            drop(pg);
            // Leave the shared database as it was.
            let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
            for table in [
                "prov_resources",
                "prov_pending",
                "prov_history",
                "prov_locks",
                "prov_meta",
            ] {
                c.execute(
                    &format!("DELETE FROM {table} WHERE workspace = $1"),
                    &[&workspace],
                )
                .unwrap();
            }
        }
        _ => println!("postgres: skipped (PROV_TEST_PG is not set; see state/tests/start-pg.sh)"),
    }
    if !ok {
        std::process::exit(1);
    }
}
