//! The conformance suite every state backend must pass (MemoryStore, SledStore and, with a
//! server, PgStore), followed by backend-specific tests: sled's locking, damaged files,
//! `create: false`, file modes, kill -9 during commits, snapshot speed; PostgreSQL's locking
//! across sessions, sessions that die, connection and permission errors.
//!
//! PostgreSQL tests read `PROV_TEST_PG` (a superuser connection string; start a throwaway server
//! with `eval "$(state/tests/start-pg.sh start)"`). Without it they print a skip line and pass,
//! unless `PROV_REQUIRE_PG` is set (as in CI), where a missing server fails them.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prov_state::*;
use serde_json::{json, Map};

#[path = "conformance/depth.rs"]
mod depth;

// ---------------------------------------------------------------------------------------------
// Helpers

fn rec(address: &str, generation: u64) -> ResourceRecord {
    let kind = address.split('.').next().unwrap_or("server").to_string();
    ResourceRecord {
        address: address.to_string(),
        kind,
        implementation: "sim".to_string(),
        provider_id: Some(format!("sim-{address}")),
        config: json!({
            "plan": "small", "zone": "z1", "os": "ubuntu-22.04",
            "tags": {"peer": "${server.web-01.private_ip}", "team": "infra"},
            "firewall_rules": [{"direction": "ingress", "protocol": "tcp", "port": "22"}],
        }),
        attributes: json!({
            "plan": "small", "zone": "z1", "os": "ubuntu-22.04",
            "tags": {"peer": "10.0.0.1", "team": "infra"},
            "firewall_rules": [{"direction": "ingress", "protocol": "tcp", "port": "22"}],
        }),
        outputs: json!({"public_ip": "203.0.113.7", "private_ip": "10.0.0.7", "gen": generation}),
        dependencies: vec!["server.web-01".to_string()],
        updated_at: 1_795_615_387,
        sensitive_paths: vec!["tags.team".to_string()],
        ..Default::default()
    }
}

fn pending(address: &str, operation: &str) -> PendingOp {
    PendingOp {
        address: address.to_string(),
        operation: operation.to_string(),
        kind: "server".to_string(),
        implementation: "sim".to_string(),
        provider_id: (operation != "create").then(|| format!("sim-{address}")),
        spec: json!({"plan": "small", "zone": "z1", "tags": {"b": 1, "a": 2}}),
        dependencies: vec!["server.web-01".to_string()],
        started_at: 1_795_615_400,
        run_id: "0123456789abcdef".to_string(),
    }
}

/// The v1 record kept as a fixture (exactly what prov stored before format 2) and the v2 record
/// it must upgrade to.
fn v1_fixture() -> (Vec<u8>, ResourceRecord) {
    let raw =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/record-v1.json"))
            .unwrap();
    let env: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(env["format_version"], 1);
    let mut upgraded = env["record"].clone();
    upgraded["sensitive_paths"] = json!([]);
    (raw, serde_json::from_value(upgraded).unwrap())
}

fn sled_opts(operation: &str) -> OpenOptions {
    OpenOptions::new(operation)
}

fn workspace() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(".prov").join("state");
    (tmp, dir)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Writes `raw` under `address` straight into the sled trees, as a newer or broken prov would.
fn sled_put_raw(dir: &Path, tree: &str, key: &str, raw: &[u8]) {
    // sled's background threads may hold its directory lock briefly after a store is dropped.
    let t0 = std::time::Instant::now();
    let db = loop {
        match sled::Config::new().path(dir).open() {
            Ok(db) => break db,
            Err(e) if t0.elapsed() < std::time::Duration::from_secs(5) => {
                let _ = e;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening sled at {}: {e}", dir.display()),
        }
    };
    db.open_tree(tree).unwrap().insert(key, raw).unwrap();
    db.flush().unwrap();
}

// ---------------------------------------------------------------------------------------------
// The generic suite

/// What the suite needs from a backend.
trait Harness {
    /// Opens the state: the same one every time, as reopening a workspace would. The caller
    /// drops the previous store first.
    fn open(&mut self) -> Box<dyn StateStore>;
    /// Stores `raw` (a record envelope, possibly damaged) as the record at `address`, as an
    /// older, newer or broken prov would have; no store is open meanwhile.
    fn put_raw(&mut self, address: &str, raw: &[u8]);
    /// Opens the same state as another process would, beside any store already open: a
    /// resource-scope writer, or (`read_only`) a reader that locks nothing.
    fn open_shared(&mut self, operation: &str, read_only: bool) -> Box<dyn StateStore>;
}

fn shared_opts(operation: &str, read_only: bool) -> OpenOptions {
    OpenOptions {
        read_only,
        create: !read_only,
        scope: LockScope::Resources,
        ..OpenOptions::new(operation)
    }
}

struct MemoryHarness(MemoryStore);

impl Harness for MemoryHarness {
    fn open(&mut self) -> Box<dyn StateStore> {
        Box::new(self.0.clone())
    }
    fn put_raw(&mut self, address: &str, raw: &[u8]) {
        self.0.put_raw_record(address, raw);
    }
    fn open_shared(&mut self, operation: &str, _read_only: bool) -> Box<dyn StateStore> {
        // A reader is a writer that locks nothing (so it can write nothing).
        Box::new(self.0.reopen(operation, LockScope::Resources))
    }
}

struct SledHarness {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Harness for SledHarness {
    fn open(&mut self) -> Box<dyn StateStore> {
        // Timeout 0: a check that forgot to drop its store fails loudly with Locked.
        Box::new(SledStore::open(&self.dir, &sled_opts("test")).unwrap())
    }
    fn put_raw(&mut self, address: &str, raw: &[u8]) {
        sled_put_raw(&self.dir, "records", address, raw);
    }
    fn open_shared(&mut self, operation: &str, read_only: bool) -> Box<dyn StateStore> {
        Box::new(SledStore::open(&self.dir, &shared_opts(operation, read_only)).unwrap())
    }
}

type Check = fn(&mut dyn Harness);

const CHECKS: &[(&str, Check)] = &[
    ("empty snapshot", check_empty_snapshot),
    ("pending operations put, clear, snapshot", check_pending),
    ("history order and limit", check_history),
    ("dump and replace_all", check_dump_replace_all),
    ("replace_all into a fresh state", check_replace_all_fresh),
    ("v1 record fixture upgrades", check_v1_fixture),
    ("put, get, replace, delete", check_put_get_delete),
    ("serial bumps once per commit", check_serial),
    ("lineage and data survive reopen", check_reopen),
    ("outputs round trip", check_outputs),
    ("batch commit is atomic", check_batch_atomic),
    (
        "newer record format is UnsupportedFormat",
        check_newer_format,
    ),
    ("damaged record is Corrupt", check_damaged_record),
    ("concurrent commits and snapshots", check_concurrent),
    (
        "resource locks: disjoint, overlapping, waiting",
        check_resource_locks,
    ),
    (
        "resource locks of thousands of addresses: all or nothing, released whole",
        check_many_resource_locks,
    ),
    ("per-resource changes since a serial", check_changed_since),
    (
        "disjoint writers at once; snapshots never see half a commit",
        check_disjoint_writers,
    ),
    (
        "overlapping writers serialize with no lost update",
        check_overlapping_writers,
    ),
    (
        "outputs computed and written atomically",
        check_update_outputs,
    ),
    (
        "every read option reads the same records",
        check_read_options,
    ),
    (
        "random values within the nesting limit round-trip",
        depth::check_values_within_the_limit_round_trip,
    ),
    (
        "a value over the nesting limit is refused, nothing written",
        depth::check_too_deep_values_are_refused,
    ),
    (
        "records an older prov stored too deep still read, pull and remove",
        depth::check_records_older_prov_stored_too_deep_still_read,
    ),
];

/// Runs every check against fresh states made by `factory`; reports all failures at once.
fn run_suite(backend: &str, factory: &dyn Fn() -> Box<dyn Harness>) {
    let mut failures = Vec::new();
    for (name, check) in CHECKS {
        let mut harness = factory();
        let t = Instant::now();
        match catch_unwind(AssertUnwindSafe(|| check(&mut *harness))) {
            Ok(()) => eprintln!("{backend}: {name}: ok ({:?})", t.elapsed()),
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("{backend}: {name}: FAILED: {msg}");
                failures.push(*name);
            }
        }
    }
    assert!(failures.is_empty(), "{backend} failed: {failures:?}");
}

#[test]
fn memory_store_conformance() {
    run_suite("memory", &|| Box::new(MemoryHarness(MemoryStore::new())));
}

#[test]
fn sled_store_conformance() {
    run_suite("sled", &|| {
        let (tmp, dir) = workspace();
        Box::new(SledHarness { _tmp: tmp, dir })
    });
}

fn check_empty_snapshot(h: &mut dyn Harness) {
    let s = h.open();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.meta.serial, 0);
    assert_eq!(snap.meta.lineage.len(), 32, "128-bit hex lineage");
    assert!(snap.meta.lineage.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(snap.resources.is_empty());
    assert!(snap.outputs.is_empty());
    assert_eq!(s.meta().unwrap(), snap.meta);
    assert_eq!(s.record("server.web-01").unwrap(), None);
}

fn check_put_get_delete(h: &mut dyn Harness) {
    let s = h.open();
    let a = rec("server.web-01", 1);
    let b = rec("taskserv.web-01.redis", 1);
    s.commit(&[Change::Put(a.clone()), Change::Put(b.clone())])
        .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 2);
    assert_eq!(snap.resources["server.web-01"], a);
    assert_eq!(snap.resources["taskserv.web-01.redis"], b);
    assert_eq!(s.record("server.web-01").unwrap(), Some(a.clone()));

    let mut a2 = a.clone();
    a2.attributes = json!({"plan": "large"});
    a2.provider_id = None;
    s.commit(&[Change::Put(a2.clone())]).unwrap();
    assert_eq!(s.record("server.web-01").unwrap(), Some(a2));

    s.commit(&[Change::Delete(b.address.clone())]).unwrap();
    assert_eq!(s.record(&b.address).unwrap(), None);
    // Deleting what is not there is not an error: an interrupted delete may be retried.
    s.commit(&[Change::Delete("cluster.none".into())]).unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(
        snap.resources.keys().collect::<Vec<_>>(),
        vec!["server.web-01"]
    );
}

/// `snapshot_with`: with or without configurations, decoded on one thread or many (enough
/// records that the default splits the decoding across threads), the same records in the same
/// order.
fn check_read_options(h: &mut dyn Harness) {
    let s = h.open();
    let all: Vec<Change> = (0..2500)
        .map(|i| Change::Put(rec(&format!("server.s{i:04}"), 1)))
        .collect();
    s.commit(&all).unwrap();
    let full = s.snapshot().unwrap();
    assert_eq!(full.resources.len(), 2500);
    assert!(full.resources.values().all(|r| !r.config.is_null()));
    let mut stripped = full.resources.clone();
    for r in stripped.values_mut() {
        r.config = serde_json::Value::Null;
    }
    for without_configs in [false, true] {
        for one_thread in [false, true] {
            let opts = ReadOptions {
                without_configs,
                one_thread,
            };
            let snap = s.snapshot_with(opts).unwrap();
            let want = if without_configs {
                &stripped
            } else {
                &full.resources
            };
            assert!(&snap.resources == want, "{opts:?}: other records");
            assert_eq!(snap.meta, full.meta, "{opts:?}");
        }
    }
    assert!(s.snapshot_without_configs().unwrap().resources == stripped);
}

fn check_serial(h: &mut dyn Harness) {
    let s = h.open();
    assert_eq!(s.commit(&[Change::Put(rec("server.a", 1))]).unwrap(), 1);
    let three = [
        Change::Put(rec("server.b", 1)),
        Change::Put(rec("server.c", 1)),
        Change::Delete("server.a".into()),
    ];
    assert_eq!(s.commit(&three).unwrap(), 2, "a batch counts once");
    assert_eq!(s.commit(&[]).unwrap(), 3, "an empty commit still counts");
    assert_eq!(s.set_outputs(Map::new()).unwrap(), 4);
    assert_eq!(s.meta().unwrap().serial, 4);
    assert_eq!(s.snapshot().unwrap().meta.serial, 4);
}

fn check_reopen(h: &mut dyn Harness) {
    let s = h.open();
    let lineage = s.meta().unwrap().lineage;
    s.commit(&[Change::Put(rec("cluster.bk", 1))]).unwrap();
    s.commit(&[Change::Put(rec("cluster.bk.registry", 1))])
        .unwrap();
    drop(s);
    let s = h.open();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.meta.lineage, lineage);
    assert_eq!(snap.meta.serial, 2);
    assert_eq!(
        snap.resources["cluster.bk.registry"],
        rec("cluster.bk.registry", 1)
    );
    assert_eq!(s.commit(&[]).unwrap(), 3);
}

fn check_outputs(h: &mut dyn Harness) {
    let s = h.open();
    let mut outputs = Map::new();
    // Insertion order is kept (serde_json preserve_order): "z" before "a".
    outputs.insert("z_web_ip".into(), json!("203.0.113.7"));
    outputs.insert(
        "a_nested".into(),
        json!({"list": [1, 2.5, null, true], "s": "x"}),
    );
    s.set_outputs(outputs.clone()).unwrap();
    assert_eq!(s.snapshot().unwrap().outputs, outputs);
    drop(s);
    let s = h.open();
    let got = s.snapshot().unwrap().outputs;
    assert_eq!(got, outputs);
    assert_eq!(got.keys().next().unwrap(), "z_web_ip");
    s.set_outputs(Map::new()).unwrap();
    assert!(s.snapshot().unwrap().outputs.is_empty());
}

fn check_batch_atomic(h: &mut dyn Harness) {
    let s = h.open();
    s.commit(&[
        Change::Put(rec("server.a", 1)),
        Change::PutPending(pending("server.p", "create")),
    ])
    .unwrap();
    s.commit(&[Change::Put(rec("server.a", 5))]).unwrap();
    let before = s.snapshot().unwrap();
    let history_before = s.history("server.a").unwrap();
    let mut bad = rec("server.b", 1);
    bad.address = String::new();
    let mut bad_op = pending("server.q", "create");
    bad_op.operation = "explode".into();
    for bad_change in [Change::Put(bad), Change::PutPending(bad_op)] {
        let err = s
            .commit(&[
                Change::Put(rec("server.a", 2)),
                Change::Delete("server.a".into()),
                Change::ClearPending("server.p".into()),
                Change::PutPending(pending("server.c", "create")),
                Change::Put(rec("server.c", 1)),
                bad_change,
            ])
            .unwrap_err();
        assert!(matches!(err, StateError::InvalidChange { .. }), "{err:?}");
        assert_eq!(
            s.snapshot().unwrap(),
            before,
            "nothing of a failed commit applies"
        );
        assert_eq!(s.history("server.a").unwrap(), history_before);
    }
    // Changes apply in order within a commit: the later one wins, and only the version from
    // before the commit goes to history.
    let serial = s
        .commit(&[
            Change::Put(rec("server.a", 2)),
            Change::Delete("server.a".into()),
            Change::Put(rec("server.c", 1)),
            Change::Put(rec("server.c", 3)),
            Change::ClearPending("server.p".into()),
            Change::PutPending(pending("server.c", "create")),
            Change::ClearPending("server.c".into()),
        ])
        .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 1);
    assert_eq!(snap.resources["server.c"], rec("server.c", 3));
    assert!(snap.pending.is_empty(), "{:?}", snap.pending);
    let h = s.history("server.a").unwrap();
    assert_eq!(h.len(), history_before.len() + 1);
    assert_eq!((h[0].serial, h[0].replaced_by.as_str()), (serial, "delete"));
    assert_eq!(h[0].record, rec("server.a", 5));
    assert!(s.history("server.c").unwrap().is_empty());
}

fn check_pending(h: &mut dyn Harness) {
    let s = h.open();
    let create = pending("server.web-02", "create");
    let delete = pending("server.web-01", "delete");
    // A pending op and a record at the same address are independent (an update in flight).
    let serial = s
        .commit(&[
            Change::Put(rec("server.web-01", 1)),
            Change::PutPending(create.clone()),
            Change::PutPending(delete.clone()),
        ])
        .unwrap();
    assert_eq!(serial, 1, "pending changes commit like any other");
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.pending.len(), 2);
    assert_eq!(snap.pending["server.web-02"], create);
    assert_eq!(snap.pending["server.web-01"], delete);
    assert_eq!(snap.resources.len(), 1);
    drop(s);

    let s = h.open();
    let snap = s.snapshot().unwrap();
    assert_eq!(
        snap.pending["server.web-02"], create,
        "pending survives reopen"
    );
    assert_eq!(
        serde_json::to_string(&snap.pending["server.web-02"].spec).unwrap(),
        r#"{"plan":"small","zone":"z1","tags":{"b":1,"a":2}}"#,
        "spec keeps its key order"
    );
    // The finished create replaces its pending op with the record, in one commit.
    let mut updated = delete.clone();
    updated.operation = "update".into();
    s.commit(&[
        Change::Put(rec("server.web-02", 1)),
        Change::ClearPending("server.web-02".into()),
        Change::PutPending(updated.clone()),
    ])
    .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(
        snap.pending.values().cloned().collect::<Vec<_>>(),
        vec![updated]
    );
    assert_eq!(snap.resources.len(), 2);
    // Clearing what is not there is fine (a resolved op cleared twice).
    s.commit(&[
        Change::ClearPending("server.web-01".into()),
        Change::ClearPending("server.none".into()),
    ])
    .unwrap();
    assert!(s.snapshot().unwrap().pending.is_empty());
    assert_eq!(s.meta().unwrap().serial, 3);
}

fn check_history(h: &mut dyn Harness) {
    let s = h.open();
    assert!(s.history("server.a").unwrap().is_empty());
    s.commit(&[Change::Put(rec("server.a", 0))]).unwrap();
    assert!(
        s.history("server.a").unwrap().is_empty(),
        "a first put replaces nothing"
    );
    // Re-putting the identical record keeps nothing.
    s.commit(&[Change::Put(rec("server.a", 0))]).unwrap();
    assert!(s.history("server.a").unwrap().is_empty());
    let mut serials = Vec::new();
    for g in 1..=(HISTORY_LIMIT as u64 + 5) {
        serials.push(
            s.commit(&[
                Change::Put(rec("server.a", g)),
                Change::Put(rec(&format!("server.other{g}"), g)),
            ])
            .unwrap(),
        );
    }
    let hist = s.history("server.a").unwrap();
    assert_eq!(hist.len(), HISTORY_LIMIT, "at most HISTORY_LIMIT versions");
    // Newest first: the version replaced by the last commit is generation N-1.
    for (i, e) in hist.iter().enumerate() {
        let replaced_gen = HISTORY_LIMIT as u64 + 4 - i as u64;
        assert_eq!(e.record, rec("server.a", replaced_gen), "entry {i}");
        assert_eq!(e.serial, serials[replaced_gen as usize], "entry {i}");
        assert_eq!(e.replaced_by, "update");
        assert!(e.at > 1_700_000_000);
    }
    let del = s.commit(&[Change::Delete("server.a".into())]).unwrap();
    drop(s);
    let s = h.open();
    assert_eq!(s.record("server.a").unwrap(), None);
    let hist = s.history("server.a").unwrap();
    assert_eq!(hist.len(), HISTORY_LIMIT, "history outlives the record");
    assert_eq!(hist[0].replaced_by, "delete");
    assert_eq!(hist[0].serial, del);
    assert_eq!(hist[0].record, rec("server.a", HISTORY_LIMIT as u64 + 5));
    assert_eq!(hist[1].record, rec("server.a", HISTORY_LIMIT as u64 + 4));
    // Other addresses keep their own history; a prefix of an address is another address.
    assert!(s.history("server.other1").unwrap().is_empty());
    assert!(s.history("server").unwrap().is_empty());
    s.commit(&[Change::Put(rec("server.a", 99))]).unwrap();
    assert_eq!(s.history("server.a").unwrap().len(), HISTORY_LIMIT);
    assert!(s.history("server.a2").unwrap().is_empty());
}

fn check_dump_replace_all(h: &mut dyn Harness) {
    let s = h.open();
    let mut outputs = Map::new();
    outputs.insert("z".into(), json!(1));
    outputs.insert("a".into(), json!({"y": 1, "b": 2}));
    s.commit(&[
        Change::Put(rec("server.a", 1)),
        Change::Put(rec("server.b", 1)),
        Change::PutPending(pending("server.c", "create")),
    ])
    .unwrap();
    s.set_outputs(outputs.clone()).unwrap();
    let dump = s.dump().unwrap();
    let meta = s.meta().unwrap();
    assert_eq!(dump.format, "prov-state");
    assert_eq!(dump.format_version, DUMP_FORMAT_VERSION);
    assert_eq!(
        (dump.lineage.clone(), dump.serial),
        (meta.lineage.clone(), 2)
    );
    assert_eq!(dump.resources, vec![rec("server.a", 1), rec("server.b", 1)]);
    assert_eq!(dump.pending, vec![pending("server.c", "create")]);
    assert_eq!(dump.outputs, outputs);
    // The JSON form round-trips, records in their envelopes.
    let text = dump.to_json();
    let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
    assert_eq!(v["resources"][0]["format_version"], RECORD_FORMAT_VERSION);
    assert_eq!(StateDump::from_json(&text, "pulled.json").unwrap(), dump);

    // Edit and push back at the same serial: accepted; serial max(ours, theirs) + 1.
    let mut edited = dump.clone();
    edited.resources.retain(|r| r.address != "server.b");
    edited.resources.push(rec("server.d", 1));
    edited.resources[0] = rec("server.a", 2);
    edited.pending.clear();
    edited.outputs = Map::new();
    assert_eq!(s.replace_all(&edited, false).unwrap(), 3);
    let snap = s.snapshot().unwrap();
    assert_eq!(
        snap.meta,
        StateMeta {
            lineage: meta.lineage.clone(),
            serial: 3
        }
    );
    assert_eq!(
        snap.resources.keys().collect::<Vec<_>>(),
        vec!["server.a", "server.d"]
    );
    assert_eq!(snap.resources["server.a"], rec("server.a", 2));
    assert!(snap.pending.is_empty());
    assert!(snap.outputs.is_empty());
    let ha = s.history("server.a").unwrap();
    assert_eq!(
        (ha.len(), ha[0].serial, ha[0].replaced_by.as_str()),
        (1, 3, "update")
    );
    let hb = s.history("server.b").unwrap();
    assert_eq!((hb.len(), hb[0].replaced_by.as_str()), (1, "delete"));

    // An older serial is refused (the state moved on since the pull), nothing written.
    let before = s.snapshot().unwrap();
    match s.replace_all(&dump, false).unwrap_err() {
        StateError::OlderSerial { ours: 3, theirs: 2 } => {}
        other => panic!("expected OlderSerial, got {other:?}"),
    }
    // Another lineage is refused.
    let mut foreign = edited.clone();
    foreign.lineage = "f".repeat(32);
    foreign.serial = 50;
    match s.replace_all(&foreign, false).unwrap_err() {
        e @ StateError::LineageMismatch { .. } => {
            assert!(
                e.to_string().contains(&"f".repeat(32)) && e.to_string().contains("--force"),
                "{e}"
            )
        }
        other => panic!("expected LineageMismatch, got {other:?}"),
    }
    // A malformed dump is refused.
    let mut dup = edited.clone();
    dup.resources.push(rec("server.d", 2));
    assert!(matches!(
        s.replace_all(&dup, true),
        Err(StateError::InvalidDump { .. })
    ));
    assert_eq!(
        s.snapshot().unwrap(),
        before,
        "refused pushes write nothing"
    );

    // With force: the state takes the pushed lineage, and the serial still moves forward.
    let mut old = dump.clone();
    old.lineage = "e".repeat(32);
    old.serial = 1;
    assert_eq!(s.replace_all(&old, true).unwrap(), 4);
    drop(s);
    let s = h.open();
    let snap = s.snapshot().unwrap();
    assert_eq!(
        snap.meta,
        StateMeta {
            lineage: "e".repeat(32),
            serial: 4
        }
    );
    assert_eq!(snap.resources.len(), 2);
    assert_eq!(snap.pending.len(), 1);
    assert_eq!(snap.outputs, outputs);
    assert_eq!(s.commit(&[]).unwrap(), 5, "commits continue after a push");
}

fn check_replace_all_fresh(h: &mut dyn Harness) {
    // Moving a state to a new backend: the new, empty state takes any lineage without force.
    let s = h.open();
    let source = MemoryStore::new();
    source.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    source.commit(&[Change::Put(rec("server.b", 1))]).unwrap();
    let dump = source.dump().unwrap();
    assert_eq!(s.replace_all(&dump, false).unwrap(), 3);
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.meta.lineage, dump.lineage);
    assert_eq!(snap.resources.len(), 2);
}

fn check_v1_fixture(h: &mut dyn Harness) {
    let (raw, want) = v1_fixture();
    drop(h.open());
    h.put_raw("server.web-01", &raw);
    let s = h.open();
    assert_eq!(s.record("server.web-01").unwrap(), Some(want.clone()));
    assert_eq!(s.snapshot().unwrap().resources["server.web-01"], want);
    assert_eq!(s.dump().unwrap().resources, vec![want.clone()]);
    // Replacing it keeps the v1 version in history, read back upgraded.
    s.commit(&[Change::Put(rec("server.web-01", 1))]).unwrap();
    let hist = s.history("server.web-01").unwrap();
    assert_eq!(hist.len(), 1);
    assert_eq!(hist[0].record, want);
}

fn check_newer_format(h: &mut dyn Harness) {
    let s = h.open();
    s.commit(&[Change::Put(rec("server.old", 1))]).unwrap();
    drop(s);
    let raw = json!({
        "format_version": RECORD_FORMAT_VERSION + 1,
        "record": {"address": "server.new", "shape": "unknown"},
    });
    h.put_raw("server.new", raw.to_string().as_bytes());
    let s = h.open();
    for err in [
        s.snapshot().unwrap_err(),
        s.record("server.new").unwrap_err(),
    ] {
        match &err {
            StateError::UnsupportedFormat {
                address,
                found,
                supported,
                ..
            } => {
                assert_eq!(address.as_deref(), Some("server.new"));
                assert_eq!(*found, RECORD_FORMAT_VERSION + 1);
                assert_eq!(*supported, RECORD_FORMAT_VERSION);
            }
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.contains("\"server.new\"") && msg.contains("newer prov"),
            "{msg}"
        );
    }
    // Other records stay readable one by one.
    assert_eq!(s.record("server.old").unwrap(), Some(rec("server.old", 1)));
}

fn check_damaged_record(h: &mut dyn Harness) {
    let s = h.open();
    drop(s);
    h.put_raw(
        "server.bad",
        b"{\"format_version\":1,\"record\":{\"address\":\"server.bad\"",
    );
    let mut other = serde_json::to_value(rec("server.x", 1)).unwrap();
    other["address"] = json!("server.y");
    h.put_raw(
        "server.x",
        json!({"format_version": RECORD_FORMAT_VERSION, "record": other})
            .to_string()
            .as_bytes(),
    );
    let s = h.open();
    match s.snapshot().unwrap_err() {
        StateError::Corrupt {
            address, detail, ..
        } => {
            assert_eq!(address.as_deref(), Some("server.bad"), "{detail}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    match s.record("server.x").unwrap_err() {
        e @ StateError::Corrupt { .. } => {
            assert!(e.to_string().contains("server.y"), "{e}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

fn check_concurrent(h: &mut dyn Harness) {
    let s: Arc<dyn StateStore> = Arc::from(h.open());
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    s.commit(&[Change::Put(rec(&format!("server.t{t}-{i}"), 1))])
                        .unwrap();
                }
            })
        })
        .collect();
    // Each commit adds one record, so a consistent snapshot has exactly `serial` records.
    while writers.iter().any(|w| !w.is_finished()) {
        let snap = s.snapshot().unwrap();
        assert_eq!(snap.resources.len() as u64, snap.meta.serial);
    }
    for w in writers {
        w.join().unwrap();
    }
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.meta.serial, 100);
    assert_eq!(snap.resources.len(), 100);
}

fn set(addresses: &[&str]) -> std::collections::BTreeSet<String> {
    addresses.iter().map(|a| a.to_string()).collect()
}

fn expect_resources_locked(res: Result<(), StateError>) -> (LockInfo, Vec<String>, String) {
    match res {
        Err(e @ StateError::ResourcesLocked { .. }) => {
            let msg = e.to_string();
            let StateError::ResourcesLocked { holder, addresses } = e else {
                unreachable!()
            };
            (*holder, addresses, msg)
        }
        other => panic!("expected ResourcesLocked, got {other:?}"),
    }
}

fn check_resource_locks(h: &mut dyn Harness) {
    let a = h.open_shared("apply-a", false);
    let b = h.open_shared("apply-b", false);
    a.lock_resources(&set(&["server.s1", "server.s2"]), Duration::ZERO)
        .unwrap();
    // Disjoint: both hold theirs at once and write them.
    b.lock_resources(&set(&["server.s3"]), Duration::ZERO)
        .unwrap();
    a.commit(&[Change::Put(rec("server.s1", 1))]).unwrap();
    b.commit(&[Change::Put(rec("server.s3", 1))]).unwrap();
    // Overlapping: refused at once, naming the holder and only the overlapping addresses; all
    // or nothing, so server.s4 is not held by b afterwards.
    let t = Instant::now();
    let (holder, addresses, msg) = expect_resources_locked(
        b.lock_resources(&set(&["server.s2", "server.s4"]), Duration::ZERO),
    );
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(holder.operation, "apply-a", "{msg}");
    assert_eq!(addresses, vec!["server.s2".to_string()], "{msg}");
    assert!(
        msg.contains("server.s2") && msg.contains("--lock-timeout"),
        "{msg}"
    );
    // Writing what it did not lock is refused, nothing written.
    let serial = b.meta().unwrap().serial;
    match b.commit(&[Change::Put(rec("server.s4", 1))]) {
        Err(StateError::NotLocked { addresses, .. }) => {
            assert_eq!(addresses, vec!["server.s4".to_string()])
        }
        other => panic!("expected NotLocked, got {other:?}"),
    }
    assert_eq!(b.meta().unwrap().serial, serial);
    let c = h.open_shared("apply-c", false);
    c.lock_resources(&set(&["server.s4"]), Duration::ZERO)
        .unwrap();
    // Readers see who holds what (not themselves).
    let reader = h.open_shared("plan", true);
    let held = reader.resource_locks().unwrap();
    assert_eq!(
        held.keys().cloned().collect::<Vec<_>>(),
        vec!["server.s1", "server.s2", "server.s3", "server.s4"]
    );
    assert_eq!(held["server.s1"].operation, "apply-a");
    assert_eq!(held["server.s4"].operation, "apply-c");
    assert!(!a.resource_locks().unwrap().contains_key("server.s1"));
    // A waiting writer gets them once the holder is gone.
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        b.lock_resources(&set(&["server.s2"]), Duration::from_secs(10))
            .unwrap();
        b.commit(&[Change::Put(rec("server.s2", 2))]).unwrap();
        t.elapsed()
    });
    std::thread::sleep(Duration::from_millis(400));
    drop(a);
    let waited = waiter.join().unwrap();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(
        reader.record("server.s2").unwrap().unwrap().outputs["gen"],
        2
    );
    drop((c, reader));
}

/// More addresses than a backend may write in one piece (sled: 256 per batch).
fn check_many_resource_locks(h: &mut dyn Harness) {
    let addrs = |from: usize, to: usize| -> std::collections::BTreeSet<String> {
        (from..to).map(|i| format!("server.s{i:05}")).collect()
    };
    let a = h.open_shared("apply-a", false);
    let b = h.open_shared("apply-b", false);
    let reader = h.open_shared("plan", true);
    a.lock_resources(&addrs(0, 1000), Duration::ZERO).unwrap();
    // One overlapping address among 1,000, the last one: refused, and none of the others is
    // taken by b.
    let (holder, addresses, msg) =
        expect_resources_locked(b.lock_resources(&addrs(999, 1999), Duration::ZERO));
    assert_eq!(holder.operation, "apply-a", "{msg}");
    assert_eq!(addresses, vec!["server.s00999".to_string()], "{msg}");
    let held = reader.resource_locks().unwrap();
    assert_eq!(held.len(), 1000);
    assert!(held.values().all(|h| h.operation == "apply-a"));
    b.lock_resources(&addrs(1000, 2000), Duration::ZERO)
        .unwrap();
    assert_eq!(reader.resource_locks().unwrap().len(), 2000);
    // Let go of at the end, every one of them.
    drop(a);
    let held = reader.resource_locks().unwrap();
    assert_eq!(held.len(), 1000);
    assert!(held.values().all(|h| h.operation == "apply-b"));
    drop((b, reader));
}

fn check_changed_since(h: &mut dyn Harness) {
    let s = h.open();
    let all = set(&["server.s1", "server.s2", "server.s3"]);
    let base = s.meta().unwrap().serial;
    assert!(s.changed_since(&all, base).unwrap().is_empty());
    let one = s.commit(&[Change::Put(rec("server.s1", 1))]).unwrap();
    let two = s
        .commit(&[Change::PutPending(pending("server.s2", "create"))])
        .unwrap();
    assert_eq!(
        s.changed_since(&all, base).unwrap(),
        set(&["server.s1", "server.s2"])
    );
    assert_eq!(s.changed_since(&all, one).unwrap(), set(&["server.s2"]));
    assert!(s.changed_since(&all, two).unwrap().is_empty());
    // Other commits (outputs, unrelated records) leave them unchanged.
    s.set_outputs(Map::new()).unwrap();
    let three = s.commit(&[Change::Put(rec("server.other", 1))]).unwrap();
    assert!(s.changed_since(&all, two).unwrap().is_empty());
    s.commit(&[
        Change::Delete("server.s1".into()),
        Change::ClearPending("server.s2".into()),
    ])
    .unwrap();
    assert_eq!(
        s.changed_since(&all, three).unwrap(),
        set(&["server.s1", "server.s2"])
    );
    // A push writes every address it holds.
    let dump = s.dump().unwrap();
    let before = s.meta().unwrap().serial;
    s.replace_all(&dump, false).unwrap();
    assert!(s
        .changed_since(&set(&["server.other"]), before)
        .unwrap()
        .contains("server.other"));
}

fn check_disjoint_writers(h: &mut dyn Harness) {
    const WRITERS: usize = 4;
    const RECORDS: usize = 8;
    const ROUNDS: u64 = 6;
    let writers: Vec<Box<dyn StateStore>> = (0..WRITERS)
        .map(|w| h.open_shared(&format!("apply-{w}"), false))
        .collect();
    let reader: Arc<dyn StateStore> = Arc::from(h.open_shared("plan", true));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (reader, done) = (reader.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seen = 0;
            while !done.load(Ordering::SeqCst) || seen == 0 {
                let snap = reader.snapshot().unwrap();
                // Each commit writes all records of one writer with one generation.
                for w in 0..WRITERS {
                    let gens: std::collections::BTreeSet<u64> = (0..RECORDS)
                        .filter_map(|i| snap.resources.get(&format!("server.w{w}-{i}")))
                        .map(|r| r.outputs["gen"].as_u64().unwrap())
                        .collect();
                    assert!(gens.len() <= 1, "half a commit of writer {w}: {gens:?}");
                }
                seen += 1;
            }
            seen
        })
    };
    let handles: Vec<_> = writers
        .into_iter()
        .enumerate()
        .map(|(w, s)| {
            std::thread::spawn(move || {
                let mine: std::collections::BTreeSet<String> =
                    (0..RECORDS).map(|i| format!("server.w{w}-{i}")).collect();
                s.lock_resources(&mine, Duration::ZERO).unwrap();
                for g in 1..=ROUNDS {
                    let changes: Vec<Change> =
                        mine.iter().map(|a| Change::Put(rec(a, g))).collect();
                    s.commit(&changes).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = watcher.join().unwrap();
    eprintln!("  {seen} snapshots read while {WRITERS} writers committed");
    let snap = reader.snapshot().unwrap();
    assert_eq!(snap.resources.len(), WRITERS * RECORDS);
    assert!(snap.resources.values().all(|r| r.outputs["gen"] == ROUNDS));
}

fn check_overlapping_writers(h: &mut dyn Harness) {
    const INCREMENTS: u64 = 8;
    let stores: Vec<Vec<Box<dyn StateStore>>> = (0..2)
        .map(|w| {
            (0..INCREMENTS)
                .map(|i| h.open_shared(&format!("apply-{w}-{i}"), false))
                .collect()
        })
        .collect();
    let handles: Vec<_> = stores
        .into_iter()
        .map(|mine| {
            std::thread::spawn(move || {
                // Each increment is one apply: lock, read, write, end.
                for s in mine {
                    s.lock_resources(&set(&["server.counter"]), Duration::from_secs(30))
                        .unwrap();
                    let next = s
                        .record("server.counter")
                        .unwrap()
                        .map_or(1, |r| r.outputs["gen"].as_u64().unwrap() + 1);
                    s.commit(&[Change::Put(rec("server.counter", next))])
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let s = h.open_shared("plan", true);
    let counter = s.record("server.counter").unwrap().unwrap();
    assert_eq!(counter.outputs["gen"], 2 * INCREMENTS, "an update was lost");
}

fn check_update_outputs(h: &mut dyn Harness) {
    let a = h.open_shared("apply-a", false);
    a.lock_resources(&set(&["server.s1"]), Duration::ZERO)
        .unwrap();
    a.commit(&[Change::Put(rec("server.s1", 7))]).unwrap();
    let before = a.meta().unwrap().serial;
    let serial = a
        .update_outputs(&mut |snap| {
            let mut m = Map::new();
            m.insert(
                "gen".into(),
                snap.resources["server.s1"].outputs["gen"].clone(),
            );
            m
        })
        .unwrap();
    assert_eq!(serial, before + 1);
    assert_eq!(a.snapshot().unwrap().outputs["gen"], 7);
}

// ---------------------------------------------------------------------------------------------
// Display of the lock error

#[test]
fn public_types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SledStore>();
    assert_send_sync::<MemoryStore>();
    assert_send_sync::<StateError>();
    assert_send_sync::<Snapshot>();
}

#[test]
fn locked_message_names_the_holder() {
    let holder = LockInfo {
        id: "8f3a".into(),
        user: "alice".into(),
        host: "host1".into(),
        pid: 4242,
        operation: "apply".into(),
        since: 1_795_615_387,
        location: ".prov/state.lock".into(),
    };
    assert_eq!(
        StateError::Locked {
            holder: Box::new(holder),
        }
        .to_string(),
        "state is locked by alice@host1 (pid 4242, operation \"apply\", since 2026-11-25 \
         14:03:07 UTC, lock id 8f3a): wait for it to finish or retry with --lock-timeout"
    );
}

#[test]
fn lock_path_is_beside_the_state_dir() {
    let p = |s: &str| lock_path_for(Path::new(s)).unwrap();
    assert_eq!(p(".prov/state"), Path::new(".prov/state.lock"));
    assert_eq!(p(".prov/state/"), Path::new(".prov/state.lock"));
    assert_eq!(p("/x/y/state"), Path::new("/x/y/state.lock"));
    assert!(matches!(
        lock_path_for(Path::new("/")),
        Err(StateError::InvalidPath { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Sled: locking

fn expect_locked(res: Result<SledStore, StateError>) -> (LockInfo, String) {
    match res {
        Err(e @ StateError::Locked { .. }) => {
            let msg = e.to_string();
            let StateError::Locked { holder } = e else {
                unreachable!()
            };
            (*holder, msg)
        }
        Err(e) => panic!("expected Locked, got {e:?}"),
        Ok(_) => panic!("expected Locked, but the open succeeded"),
    }
}

#[test]
fn sled_second_open_in_same_process_is_locked() {
    let (_tmp, dir) = workspace();
    let first = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    let t = Instant::now();
    let (holder, msg) = expect_locked(SledStore::open(&dir, &sled_opts("plan")));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "timeout 0 fails at once"
    );
    eprintln!("{msg}");
    assert_eq!(&holder, first.lock_info());
    assert_eq!(holder.pid, std::process::id());
    assert_eq!(holder.operation, "apply");
    assert!(!holder.user.is_empty() && !holder.host.is_empty() && !holder.id.is_empty());
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(msg.contains("operation \"apply\""), "{msg}");
    assert!(msg.contains("--lock-timeout"), "{msg}");
    // create: false takes the same lock.
    let mut ro = sled_opts("state list");
    ro.create = false;
    expect_locked(SledStore::open(&dir, &ro));
}

#[test]
fn sled_second_open_from_another_thread_is_locked() {
    let (_tmp, dir) = workspace();
    let _first = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    let d = dir.clone();
    let res = std::thread::spawn(move || SledStore::open(&d, &sled_opts("plan")).map(|_| ()))
        .join()
        .unwrap();
    match res {
        Err(StateError::Locked { holder }) => {
            assert_eq!(holder.pid, std::process::id());
            assert_eq!(holder.operation, "apply");
        }
        other => panic!("expected Locked, got {other:?}"),
    }
}

#[test]
fn sled_open_waits_for_lock_release() {
    let (_tmp, dir) = workspace();
    let first = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    first.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(first);
    });
    let t = Instant::now();
    let mut opts = sled_opts("apply");
    opts.lock_timeout = Duration::from_secs(2);
    let second = SledStore::open(&dir, &opts).unwrap();
    let waited = t.elapsed();
    eprintln!("waited {waited:?} for the lock");
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(second.meta().unwrap().serial, 1);
    assert_eq!(second.lock_info().operation, "apply");
    releaser.join().unwrap();
}

#[test]
fn sled_lock_released_on_drop_clears_holder_note() {
    let (_tmp, dir) = workspace();
    let lock = lock_path_for(&dir).unwrap();
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    let note: LockInfo = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(&note, s.lock_info());
    drop(s);
    assert_eq!(std::fs::read(&lock).unwrap(), b"");
    SledStore::open(&dir, &sled_opts("apply")).unwrap();
}

/// Child-process side of the cross-process tests; does nothing unless re-executed with
/// PROV_STATE_TEST_CHILD set.
#[test]
fn child_process_helper() {
    let Ok(mode) = std::env::var("PROV_STATE_TEST_CHILD") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("PROV_STATE_TEST_DIR").unwrap());
    match mode.as_str() {
        "hold" => {
            let _s = SledStore::open(&dir, &sled_opts("child-apply")).unwrap();
            println!("ready {}", std::process::id());
            std::thread::sleep(Duration::from_secs(60));
        }
        "pg-hold" => {
            // `dir` carries the workspace name here.
            let url = std::env::var("PROV_TEST_PG").unwrap();
            let s = PgStore::open(&url, dir.to_str().unwrap(), &sled_opts("child-apply")).unwrap();
            s.commit(&[Change::Put(rec("server.child", 1))]).unwrap();
            println!("ready {} {}", std::process::id(), s.lock_info().id);
            std::thread::sleep(Duration::from_secs(60));
        }
        "commit" => {
            let mut opts = sled_opts("apply");
            opts.lock_timeout = Duration::from_secs(5);
            let s = SledStore::open(&dir, &opts).unwrap();
            loop {
                let next = s.meta().unwrap().serial + 1;
                let changes: Vec<Change> = (0..200)
                    .map(|i| Change::Put(rec(&format!("server.s{i:03}"), next)))
                    .collect();
                let serial = s.commit(&changes).unwrap();
                assert_eq!(serial, next);
                println!("committed {serial}");
            }
        }
        "commit-sessions" => {
            // A resource-scope writer: every commit is a session (open, commit, close).
            let s = SledStore::open(&dir, &shared_opts("apply", false)).unwrap();
            let all: Vec<String> = (0..50).map(|i| format!("server.s{i:03}")).collect();
            s.lock_resources(&all.iter().cloned().collect(), Duration::ZERO)
                .unwrap();
            loop {
                let next = s.meta().unwrap().serial + 1;
                let changes: Vec<Change> = all.iter().map(|a| Change::Put(rec(a, next))).collect();
                let serial = s.commit(&changes).unwrap();
                assert_eq!(serial, next);
                println!("committed {serial}");
            }
        }
        "lock-resource" | "pg-lock-resource" => {
            let opts = shared_opts("child-apply", false);
            let s: Box<dyn StateStore> = if mode == "lock-resource" {
                Box::new(SledStore::open(&dir, &opts).unwrap())
            } else {
                let url = std::env::var("PROV_TEST_PG").unwrap();
                Box::new(PgStore::open(&url, dir.to_str().unwrap(), &opts).unwrap())
            };
            s.lock_resources(&set(&["server.held"]), Duration::ZERO)
                .unwrap();
            s.commit(&[Change::PutPending(pending("server.held", "update"))])
                .unwrap();
            println!("ready {}", std::process::id());
            std::thread::sleep(Duration::from_secs(60));
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Re-executes this test binary as a child running `child_process_helper` in `mode`.
fn spawn_child(mode: &str, dir: &Path) -> (Child, impl Iterator<Item = String>) {
    // Test binaries run from the package directory, but `dir` may be relative (a workspace name).
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PROV_STATE_TEST_CHILD", mode)
        .env("PROV_STATE_TEST_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok);
    (child, lines)
}

#[test]
fn sled_lock_held_by_another_process_is_named_and_dies_with_it() {
    let (_tmp, dir) = workspace();
    let (mut child, mut lines) = spawn_child("hold", &dir);
    // libtest prints "test child_process_helper ... " on the same line first.
    let ready = lines
        .find_map(|l| {
            l.split_once("ready ")
                .map(|(_, pid)| pid.trim().to_string())
        })
        .expect("child got the lock");
    let child_pid: u32 = ready.parse().unwrap();
    assert_eq!(child_pid, child.id());

    let (holder, msg) = expect_locked(SledStore::open(&dir, &sled_opts("plan")));
    eprintln!("{msg}");
    assert_eq!(holder.pid, child_pid);
    assert_eq!(holder.operation, "child-apply");
    assert!(msg.contains(&format!("pid {child_pid}")), "{msg}");

    // kill -9: the kernel drops the flock, so no stale lock is left behind.
    child.kill().unwrap();
    child.wait().unwrap();
    let mut opts = sled_opts("apply");
    opts.lock_timeout = Duration::from_secs(2);
    let s = SledStore::open(&dir, &opts).unwrap();
    assert_eq!(s.meta().unwrap().serial, 0);
}

/// A resource lock held by a child process is named while it lives, leaves others free to write
/// other resources, and is free once the child is killed with SIGKILL (its pending note stays,
/// for the next plan to resolve).
fn resource_lock_dies_with_its_process(
    mode: &str,
    arg: &Path,
    open: &dyn Fn() -> Box<dyn StateStore>,
) {
    let (mut child, mut lines) = spawn_child(mode, arg);
    let ready = lines
        .find_map(|l| {
            l.split_once("ready ")
                .map(|(_, pid)| pid.trim().to_string())
        })
        .expect("child locked its resource");
    let child_pid: u32 = ready.parse().unwrap();
    let s = open();
    let (holder, addresses, msg) =
        expect_resources_locked(s.lock_resources(&set(&["server.held"]), Duration::ZERO));
    eprintln!("{msg}");
    assert_eq!(holder.pid, child_pid);
    assert_eq!(addresses, vec!["server.held".to_string()]);
    assert!(s.resource_locks().unwrap().contains_key("server.held"));
    s.lock_resources(&set(&["server.other"]), Duration::ZERO)
        .unwrap();
    s.commit(&[Change::Put(rec("server.other", 1))]).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    s.lock_resources(&set(&["server.held"]), Duration::from_secs(10))
        .unwrap();
    eprintln!("free {:?} after the holder was killed", t.elapsed());
    assert!(s.resource_locks().unwrap().is_empty());
    assert!(s.snapshot().unwrap().pending.contains_key("server.held"));
}

#[test]
fn sled_resource_lock_dies_with_its_process() {
    let (_tmp, dir) = workspace();
    let d = dir.clone();
    resource_lock_dies_with_its_process("lock-resource", &dir, &|| {
        Box::new(SledStore::open(&d, &shared_opts("apply", false)).unwrap())
    });
}

#[test]
fn pg_resource_lock_dies_with_its_process() {
    let Some(url) = pg_url("pg_resource_lock_dies_with_its_process") else {
        return;
    };
    let ws = unique("killed");
    resource_lock_dies_with_its_process("pg-lock-resource", Path::new(&ws), &|| {
        Box::new(PgStore::open(&url, &ws, &shared_opts("apply", false)).unwrap())
    });
}

#[test]
fn sled_lock_held_by_flock_tool_reports_unknown_holder() {
    let Ok(flock) = which("flock") else {
        eprintln!("flock(1) not installed; skipped");
        return;
    };
    let (_tmp, dir) = workspace();
    std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
    let lock = lock_path_for(&dir).unwrap();
    // The shell exits when its stdin closes, and flock(1) with it, leaving nothing behind.
    let mut child = Command::new(flock)
        .arg(&lock)
        .args(["sh", "-c", "echo held; read _; exit 0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "held");
    // A note left behind by a prov that was killed -9 must not be blamed.
    let stale = LockInfo {
        id: "dead".into(),
        user: "bob".into(),
        host: hostname(),
        pid: dead_pid(),
        operation: "apply".into(),
        since: 0,
        location: lock.display().to_string(),
    };
    std::fs::write(&lock, serde_json::to_vec(&stale).unwrap()).unwrap();
    let (holder, msg) = expect_locked(SledStore::open(&dir, &sled_opts("plan")));
    eprintln!("{msg}");
    assert_eq!(holder.pid, 0);
    assert!(
        msg.contains("names no holder") && msg.contains("state.lock"),
        "{msg}"
    );
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
    SledStore::open(&dir, &sled_opts("apply")).unwrap();
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes.
    unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The pid of a process that has exited.
fn dead_pid() -> u32 {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

fn which(tool: &str) -> Result<PathBuf, ()> {
    std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        })
        .ok_or(())
}

// ---------------------------------------------------------------------------------------------
// Sled: damaged state

/// Creates a state with a few commits, damages it with `damage`, and expects Corrupt from both
/// a creating and a read-only open, without a panic.
fn expect_corrupt_after(what: &str, damage: impl Fn(&Path)) {
    let (_tmp, dir) = workspace();
    {
        let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
        for g in 1..=3 {
            let changes: Vec<Change> = (0..100)
                .map(|i| Change::Put(rec(&format!("server.s{i:03}"), g)))
                .collect();
            s.commit(&changes).unwrap();
        }
    }
    damage(&dir);
    for create in [false, true] {
        let mut opts = sled_opts("plan");
        opts.create = create;
        let res = catch_unwind(AssertUnwindSafe(|| {
            SledStore::open(&dir, &opts).and_then(|s| s.snapshot().map(|_| ()))
        }));
        match res {
            Err(_) => panic!("{what}: panicked"),
            Ok(Err(e @ StateError::Corrupt { .. })) => {
                let msg = e.to_string();
                eprintln!("{what} (create: {create}): {msg}");
                assert!(
                    msg.contains(&format!("sled state at {}", dir.display())),
                    "{msg}"
                );
                assert!(msg.contains("what to do"), "{msg}");
            }
            Ok(other) => panic!("{what} (create: {create}): expected Corrupt, got {other:?}"),
        }
    }
}

fn set_len(path: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn sled_truncated_db_is_corrupt() {
    expect_corrupt_after("db truncated to half", |d| {
        let len = std::fs::metadata(d.join("db")).unwrap().len();
        set_len(&d.join("db"), len / 2);
    });
    expect_corrupt_after("db truncated to 100 bytes", |d| set_len(&d.join("db"), 100));
    expect_corrupt_after("db truncated to 0 bytes", |d| set_len(&d.join("db"), 0));
}

#[test]
fn sled_garbage_is_corrupt() {
    expect_corrupt_after("db overwritten with garbage", |d| {
        let len = std::fs::metadata(d.join("db")).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len).map(|i| (i * 7 + 13) as u8).collect();
        std::fs::write(d.join("db"), garbage).unwrap();
    });
    expect_corrupt_after("conf overwritten with garbage", |d| {
        std::fs::write(d.join("conf"), b"\x00garbage\xff").unwrap();
    });
    expect_corrupt_after("every file overwritten with garbage", |d| {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                std::fs::write(&p, b"not a sled file").unwrap();
            }
        }
    });
    expect_corrupt_after("db removed", |d| {
        std::fs::remove_file(d.join("db")).unwrap()
    });
    expect_corrupt_after("state dir is a file", |d| {
        std::fs::remove_dir_all(d).unwrap();
        std::fs::write(d, b"oops").unwrap();
    });
    expect_corrupt_after("meta serial is garbage", |d| {
        sled_put_raw(d, "meta", "serial", b"\"many\"");
    });
}

#[test]
fn sled_random_damage_is_never_silent() {
    // sled drops everything after the first bad log entry; whatever byte is hit, prov must
    // either read the full last state or refuse with Corrupt, never an older or partial state.
    let (tmp, golden) = workspace();
    {
        let s = SledStore::open(&golden, &sled_opts("apply")).unwrap();
        for g in 1..=3 {
            let changes: Vec<Change> = (0..100)
                .map(|i| Change::Put(rec(&format!("server.s{i:03}"), g)))
                .collect();
            s.commit(&changes).unwrap();
        }
    }
    let db = std::fs::read(golden.join("db")).unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut corrupt, mut intact) = (0, 0);
    for case in 0..25 {
        let dir = tmp.path().join(format!("case{case}")).join("state");
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["conf", "prov-guard.json"] {
            std::fs::copy(golden.join(f), dir.join(f)).unwrap();
        }
        let mut damaged = db.clone();
        for _ in 0..1 + rnd() % 4 {
            let at = (rnd() % damaged.len() as u64) as usize;
            damaged[at] ^= 1 << (rnd() % 8);
        }
        std::fs::write(dir.join("db"), damaged).unwrap();
        let res = catch_unwind(AssertUnwindSafe(|| {
            SledStore::open(&dir, &sled_opts("plan")).and_then(|s| s.snapshot())
        }))
        .unwrap_or_else(|_| panic!("case {case}: panicked"));
        match res {
            Ok(snap) => {
                assert_eq!(snap.meta.serial, 3, "case {case}");
                assert_eq!(snap.resources.len(), 100, "case {case}");
                intact += 1;
            }
            Err(StateError::Corrupt { .. }) => corrupt += 1,
            Err(e) => panic!("case {case}: expected Corrupt, got {e:?}"),
        }
    }
    eprintln!("random damage: {corrupt} detected as corrupt, {intact} harmless");
}

#[test]
fn sled_newer_state_format_is_unsupported() {
    let (_tmp, dir) = workspace();
    drop(SledStore::open(&dir, &sled_opts("apply")).unwrap());
    sled_put_raw(&dir, "meta", "format_version", b"99");
    match SledStore::open(&dir, &sled_opts("plan")) {
        Err(e @ StateError::UnsupportedFormat { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains("99") && msg.contains("newer prov"), "{msg}");
        }
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Sled: creation, read-only opens, file modes

#[test]
fn sled_create_false_on_missing_state_creates_no_database() {
    let (tmp, dir) = workspace();
    let mut opts = sled_opts("state list");
    opts.create = false;
    let s = SledStore::open(&dir, &opts).unwrap();
    assert!(!s.exists());
    assert!(!dir.exists(), "no sled database may be created");
    assert_eq!(s.snapshot().unwrap(), Snapshot::default());
    assert_eq!(
        s.meta().unwrap(),
        StateMeta {
            lineage: String::new(),
            serial: 0
        }
    );
    assert_eq!(s.record("server.a").unwrap(), None);
    let err = s.commit(&[Change::Put(rec("server.a", 1))]).unwrap_err();
    assert!(matches!(err, StateError::NotCreated { .. }), "{err:?}");
    assert!(s.set_outputs(Map::new()).is_err());
    // Only the lock (and its directory) exist.
    let entries: Vec<_> = std::fs::read_dir(tmp.path().join(".prov"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, vec!["state.lock"]);
    drop(s);
    assert!(!dir.exists());

    // A later creating open works, and then read-only opens see the data.
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let lineage = s.meta().unwrap().lineage;
    drop(s);
    let s = SledStore::open(&dir, &opts).unwrap();
    assert!(s.exists());
    assert_eq!(s.meta().unwrap(), StateMeta { lineage, serial: 1 });
    assert_eq!(s.snapshot().unwrap().resources.len(), 1);
}

#[test]
fn sled_files_are_private() {
    let (tmp, dir) = workspace();
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    assert_eq!(mode(&tmp.path().join(".prov")), 0o700);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&lock_path_for(&dir).unwrap()), 0o600);
    assert_eq!(mode(&dir.join("prov-guard.json")), 0o600);
    drop(s);
}

// ---------------------------------------------------------------------------------------------
// Sled: crash safety and speed

#[test]
fn sled_kill_9_during_commits_leaves_a_consistent_durable_state() {
    let (_tmp, dir) = workspace();
    for round in 0..6u64 {
        let (mut child, lines) = spawn_child("commit", &dir);
        let mut last_acked = 0;
        for line in lines {
            if let Some((_, n)) = line.split_once("committed ") {
                last_acked = n.trim().parse().unwrap();
                if last_acked >= 3 * (round + 1) {
                    break;
                }
            }
        }
        // Vary the moment of death across rounds.
        std::thread::sleep(Duration::from_millis(round * 7));
        child.kill().unwrap();
        child.wait().unwrap();

        let mut opts = sled_opts("plan");
        opts.lock_timeout = Duration::from_secs(2);
        let s = SledStore::open(&dir, &opts).unwrap();
        let snap = s.snapshot().unwrap();
        assert!(
            snap.meta.serial >= last_acked,
            "acknowledged commit {last_acked} lost (state at {})",
            snap.meta.serial
        );
        assert_eq!(snap.resources.len(), 200);
        for r in snap.resources.values() {
            assert_eq!(
                r.outputs["gen"],
                json!(snap.meta.serial),
                "{} is from another commit than serial {}",
                r.address,
                snap.meta.serial
            );
        }
        eprintln!(
            "round {round}: acked {last_acked}, recovered serial {}",
            snap.meta.serial
        );
    }
}

/// A resource lock of a holder on another host (a state on a shared file system) cannot be
/// checked, so it holds until `force-unlock` clears it; one of a live process here is refused.
#[test]
fn sled_force_unlock_clears_resource_locks_of_a_holder_elsewhere() {
    let (_tmp, dir) = workspace();
    SledStore::open(&dir, &shared_opts("apply", false)).unwrap();
    let entry = |id: &str, host: &str, pid: u32| {
        json!({"holder": {"id": id, "user": "bob", "host": host, "pid": pid,
                          "operation": "apply", "since": 1_795_615_400u64, "location": ""},
               "start": 0})
        .to_string()
    };
    sled_put_raw(
        &dir,
        "locks",
        "server.far",
        entry("feedc0de", "elsewhere", 1).as_bytes(),
    );
    sled_put_raw(
        &dir,
        "locks",
        "server.here",
        entry("0ddba11", &hostname(), std::process::id()).as_bytes(),
    );
    let s = SledStore::open(&dir, &shared_opts("apply", false)).unwrap();
    let (holder, addresses, _) =
        expect_resources_locked(s.lock_resources(&set(&["server.far"]), Duration::ZERO));
    assert_eq!((holder.host.as_str(), addresses.len()), ("elsewhere", 1));
    match force_unlock_sled(&dir, "0ddba11") {
        Err(StateError::LockHeld { holder, .. }) => assert_eq!(holder.pid, std::process::id()),
        other => panic!("a live local holder must be refused: {other:?}"),
    }
    match force_unlock_sled(&dir, "feedc0de").unwrap() {
        ForceUnlock::ResourceLocksCleared { holder, addresses } => {
            assert_eq!(holder.host, "elsewhere");
            assert_eq!(addresses, vec!["server.far".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    s.lock_resources(&set(&["server.far"]), Duration::ZERO)
        .unwrap();
    assert!(matches!(
        force_unlock_sled(&dir, "nobody"),
        Err(StateError::LockIdMismatch { .. })
    ));
}

/// A process killed while sled wrote a snapshot leaves `snap.LSN.generating`, which sled 0.34
/// takes for the newest snapshot and fails to read: the next open removes it and recovers from
/// the snapshot before it and the log, losing nothing.
#[test]
fn sled_unfinished_snapshot_of_a_killed_process_is_recovered_from() {
    let (_tmp, dir) = workspace();
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    drop(s);
    let torn = dir.join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&torn, b"half of a snapshot, then the process was killed").unwrap();
    let s = SledStore::open(&dir, &sled_opts("plan")).unwrap();
    assert_eq!(s.meta().unwrap().serial, 1);
    assert!(s.record("server.a").unwrap().is_some());
    assert!(!torn.exists());
}

/// kill -9 of a resource-scope writer at random moments of its sessions (opening sled,
/// committing, closing it): the next open finds every acknowledged commit, whole.
#[test]
fn sled_kill_9_during_sessions_leaves_a_consistent_durable_state() {
    let (_tmp, dir) = workspace();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(std::process::id());
    let rounds: u64 = std::env::var("PROV_KILL_ROUNDS").map_or(40, |r| r.parse().unwrap());
    for round in 0..rounds {
        let (mut child, lines) = spawn_child("commit-sessions", &dir);
        let mut last_acked = 0;
        for line in lines {
            if let Some((_, n)) = line.split_once("committed ") {
                last_acked = n.trim().parse().unwrap();
                break;
            }
        }
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 60_000));
        child.kill().unwrap();
        child.wait().unwrap();
        let s = SledStore::open(&dir, &shared_opts("plan", true)).unwrap();
        let snap = s
            .snapshot()
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(
            snap.meta.serial >= last_acked,
            "round {round}: acknowledged commit lost"
        );
        for r in snap.resources.values() {
            assert_eq!(r.outputs["gen"], json!(snap.meta.serial), "round {round}");
        }
    }
}

#[test]
fn sled_snapshot_of_10000_records_timing() {
    let (_tmp, dir) = workspace();
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    let t = Instant::now();
    for batch in 0..10 {
        let changes: Vec<Change> = (0..1000)
            .map(|i| Change::Put(rec(&format!("server.s{:05}", batch * 1000 + i), 1)))
            .collect();
        s.commit(&changes).unwrap();
    }
    eprintln!("10 commits of 1,000 records: {:?}", t.elapsed());

    let t = Instant::now();
    for i in 0..100 {
        s.commit(&[Change::Put(rec(&format!("server.s{i:05}"), 2))])
            .unwrap();
    }
    eprintln!(
        "single-record commit into 10,000 records: {:?} each (fsync included)",
        t.elapsed() / 100
    );

    let (mut best, mut best_cpu) = (Duration::MAX, Duration::MAX);
    for _ in 0..5 {
        let (t, cpu) = (Instant::now(), cpu_time());
        let snap = s.snapshot().unwrap();
        best = best.min(t.elapsed());
        best_cpu = best_cpu.min(cpu_time() - cpu);
        assert_eq!(snap.resources.len(), 10_000);
    }
    let raw_len: usize = s
        .snapshot()
        .unwrap()
        .resources
        .values()
        .map(|r| serde_json::to_vec(r).unwrap().len())
        .sum();
    eprintln!(
        "snapshot of 10,000 records ({} KiB of JSON): best of 5 {best:?} wall, {best_cpu:?} CPU \
         (all threads; wall time suffers when the machine is busy)",
        raw_len / 1024
    );
    drop(s);

    let mut opts = sled_opts("plan");
    opts.create = false;
    let (s, open) = timed(|| SledStore::open(&dir, &opts).unwrap());
    let (snap, first) = timed(|| s.snapshot().unwrap());
    assert_eq!(snap.resources.len(), 10_000);
    eprintln!("reopen: {open}; first snapshot after reopen (sled pages in its files): {first}");

    let m = MemoryStore::new();
    let changes: Vec<Change> = (0..10_000)
        .map(|i| Change::Put(rec(&format!("server.s{i:05}"), 1)))
        .collect();
    m.commit(&changes).unwrap();
    for _ in 0..3 {
        let (_, t) = timed(|| m.snapshot().unwrap());
        eprintln!("memory snapshot of 10,000 records: {t}");
    }
}

/// CPU time used by this process so far (all threads), to report costs that do not depend on
/// how busy the machine is.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs `f`, returning its result and "<wall> wall, <cpu> CPU".
fn timed<T>(f: impl FnOnce() -> T) -> (T, String) {
    let (t, cpu) = (Instant::now(), cpu_time());
    let out = f();
    let cost = format!("{:?} wall, {:?} CPU", t.elapsed(), cpu_time() - cpu);
    (out, cost)
}

// ---------------------------------------------------------------------------------------------
// Sled: force-unlock, layout upgrade, push and the guard note

/// The id in the holder note of the sled lock at `dir`.
fn sled_note(dir: &Path) -> LockInfo {
    serde_json::from_slice(&std::fs::read(lock_path_for(dir).unwrap()).unwrap()).unwrap()
}

#[test]
fn sled_force_unlock() {
    let (_tmp, dir) = workspace();
    // No lock file at all: nothing to unlock.
    match force_unlock_sled(&dir, "abcd").unwrap_err() {
        e @ StateError::LockIdMismatch { holder: None, .. } => {
            assert!(e.to_string().contains("not locked"), "{e}")
        }
        other => panic!("expected LockIdMismatch, got {other:?}"),
    }
    let (mut child, mut lines) = spawn_child("hold", &dir);
    let child_pid: u32 = lines
        .find_map(|l| {
            l.split_once("ready ")
                .map(|(_, p)| p.trim().parse().unwrap())
        })
        .expect("child got the lock");
    let note = sled_note(&dir);
    assert_eq!(note.pid, child_pid);

    // A live holder: a wrong id is refused naming the holder; the right one names the process.
    match force_unlock_sled(&dir, "0000").unwrap_err() {
        e @ StateError::LockIdMismatch { .. } => {
            let msg = e.to_string();
            assert!(
                msg.contains(&note.id) && msg.contains("nothing was unlocked"),
                "{msg}"
            );
        }
        other => panic!("expected LockIdMismatch, got {other:?}"),
    }
    match force_unlock_sled(&dir, &note.id).unwrap_err() {
        e @ StateError::LockHeld { .. } => {
            let msg = e.to_string();
            eprintln!("{msg}");
            assert!(
                msg.contains(&format!("pid {child_pid}")) && msg.contains("stop that process"),
                "{msg}"
            );
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }
    assert_eq!(
        sled_note(&dir),
        note,
        "a refused force-unlock changes nothing"
    );

    // kill -9 leaves the note behind (the flock itself died): force-unlock clears it.
    child.kill().unwrap();
    child.wait().unwrap();
    match force_unlock_sled(&dir, &note.id).unwrap() {
        ForceUnlock::StaleNoteCleared(h) => {
            assert_eq!((h.id.as_str(), h.pid), (note.id.as_str(), child_pid))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(lock_path_for(&dir).unwrap()).unwrap(), b"");
    assert!(matches!(
        force_unlock_sled(&dir, &note.id),
        Err(StateError::LockIdMismatch { holder: None, .. })
    ));
    SledStore::open(&dir, &sled_opts("apply")).unwrap();
}

#[test]
fn sled_v1_layout_is_upgraded_by_a_writing_open_only() {
    let (_tmp, dir) = workspace();
    {
        let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
        s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    }
    // What prov wrote before layout 2: format 1, and a v1 record.
    sled_put_raw(&dir, "meta", "format_version", b"1");
    let (raw, want) = v1_fixture();
    sled_put_raw(&dir, "records", "server.web-01", &raw);
    let read_format = |dir: &Path| -> String {
        let t0 = Instant::now();
        let db = loop {
            match sled::Config::new().path(dir).open() {
                Ok(db) => break db,
                Err(_) if t0.elapsed() < Duration::from_secs(5) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{e}"),
            }
        };
        let v = db
            .open_tree("meta")
            .unwrap()
            .get("format_version")
            .unwrap()
            .unwrap();
        String::from_utf8(v.to_vec()).unwrap()
    };
    let mut ro = sled_opts("plan");
    ro.create = false;
    {
        let s = SledStore::open(&dir, &ro).unwrap();
        assert_eq!(s.record("server.web-01").unwrap(), Some(want.clone()));
        assert_eq!(s.snapshot().unwrap().resources.len(), 2);
    }
    assert_eq!(
        read_format(&dir),
        "1",
        "a read-only open leaves the layout alone"
    );
    {
        let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
        s.commit(&[Change::PutPending(pending("server.b", "create"))])
            .unwrap();
        assert_eq!(s.snapshot().unwrap().resources["server.web-01"], want);
    }
    assert_eq!(read_format(&dir), STATE_FORMAT_VERSION.to_string());
}

#[test]
fn sled_push_of_another_lineage_survives_a_crash_before_the_guard_note() {
    let (_tmp, dir) = workspace();
    let guard = dir.join("prov-guard.json");
    let s = SledStore::open(&dir, &sled_opts("apply")).unwrap();
    s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let old_note = std::fs::read(&guard).unwrap();
    let mut dump = s.dump().unwrap();
    dump.lineage = "a".repeat(32);
    assert_eq!(s.replace_all(&dump, true).unwrap(), 2);
    drop(s);
    // As if killed between sled's flush and the note's rewrite.
    std::fs::write(&guard, &old_note).unwrap();
    let s = SledStore::open(&dir, &sled_opts("plan")).unwrap();
    assert_eq!(
        s.meta().unwrap(),
        StateMeta {
            lineage: "a".repeat(32),
            serial: 2
        }
    );
    drop(s);
    // Files of an unrelated state are still told apart.
    std::fs::write(
        &guard,
        serde_json::to_vec(&json!({"lineage": "b".repeat(32), "serial": 1})).unwrap(),
    )
    .unwrap();
    match SledStore::open(&dir, &sled_opts("plan")) {
        Err(StateError::Corrupt { detail, .. }) => assert!(detail.contains("lineage"), "{detail}"),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn dump_files_are_checked() {
    let m = MemoryStore::new();
    m.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let dump = m.dump().unwrap();
    let text = String::from_utf8(dump.to_json()).unwrap();
    let bad = |text: &str| StateDump::from_json(text.as_bytes(), "s.json").unwrap_err();
    assert!(matches!(bad("[]"), StateError::InvalidDump { .. }));
    assert!(bad(r#"{"format": "terraform"}"#)
        .to_string()
        .contains("s.json"));
    match bad(&text.replace(
        "\"format_version\": 1,\n  \"lineage\"",
        "\"format_version\": 9,\n  \"lineage\"",
    )) {
        StateError::UnsupportedFormat { found: 9, .. } => {}
        other => panic!("expected UnsupportedFormat, got {other:?}"),
    }
    // A record of a newer format inside an otherwise good dump.
    let newer = text.replacen(
        &format!("\"format_version\": {RECORD_FORMAT_VERSION}"),
        "\"format_version\": 77",
        1,
    );
    assert!(
        bad(&newer).to_string().contains("newer prov"),
        "{}",
        bad(&newer)
    );
    // An old dump holding a v1 record reads upgraded.
    let (raw, want) = v1_fixture();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["resources"] = json!([serde_json::from_slice::<serde_json::Value>(&raw).unwrap()]);
    let old = StateDump::from_json(v.to_string().as_bytes(), "old.json").unwrap();
    assert_eq!(old.resources, vec![want]);
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// The test server's superuser connection string, or `None` (with a skip line) when there is
/// none and none is required.
fn pg_url(test: &str) -> Option<String> {
    match std::env::var("PROV_TEST_PG") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("PROV_REQUIRE_PG").is_none(),
                "{test}: PROV_REQUIRE_PG is set but PROV_TEST_PG is not; start a server with \
                 eval \"$(state/tests/start-pg.sh start)\""
            );
            // Straight to stderr: libtest would hide eprintln! output of a passing test.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: PROV_TEST_PG is not set (start a throwaway server with \
                 eval \"$(state/tests/start-pg.sh start)\")"
            );
            None
        }
    }
}

fn admin(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// A name no other test (or earlier run against the same server) uses.
fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A key=value connection string to `db` on the test server, as `user` (password given) or as
/// the test superuser.
fn pg_conn(url: &str, db: &str, user: Option<(&str, &str)>) -> String {
    let c: postgres::Config = url.parse().unwrap();
    let host = match &c.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    let (user, password) = match user {
        Some((u, p)) => (u.to_string(), p.to_string()),
        None => (
            c.get_user().unwrap().to_string(),
            String::from_utf8(c.get_password().unwrap_or_default().to_vec()).unwrap(),
        ),
    };
    format!("host={host} port={port} user={user} password='{password}' dbname={db}")
}

/// A fresh database, dropped with the guard.
struct TempDb {
    url: String,
    name: String,
}

impl TempDb {
    fn new(url: &str) -> TempDb {
        let name = unique("prov_test_db");
        admin(url)
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        TempDb {
            url: url.to_string(),
            name,
        }
    }
    fn conn(&self, user: Option<(&str, &str)>) -> String {
        pg_conn(&self.url, &self.name, user)
    }
    fn admin(&self) -> postgres::Client {
        admin(&self.conn(None))
    }
    fn prov_tables(&self) -> Vec<String> {
        self.admin()
            .query(
                "SELECT tablename::text FROM pg_tables WHERE tablename LIKE 'prov\\_%' ORDER BY 1",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = admin(&self.url).batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

struct PgHarness {
    url: String,
    workspace: String,
}

impl Harness for PgHarness {
    fn open(&mut self) -> Box<dyn StateStore> {
        Box::new(PgStore::open(&self.url, &self.workspace, &sled_opts("test")).unwrap())
    }
    fn put_raw(&mut self, address: &str, raw: &[u8]) {
        // The table keeps version and body apart; bytes that are no envelope at all (a
        // truncated file in sled) become a body that is no record.
        let (version, body) = match prov_state::from_slice_deep::<serde_json::Value>(raw) {
            Ok(v) if v["format_version"].is_u64() => (
                v["format_version"].as_u64().unwrap() as i32,
                v["record"].to_string(),
            ),
            _ => (1, "\"damaged\"".to_string()),
        };
        admin(&self.url)
            .execute(
                "INSERT INTO prov_resources (workspace, address, format_version, record) \
                 VALUES ($1, $2, $3, $4::text::json) ON CONFLICT (workspace, address) \
                 DO UPDATE SET format_version = EXCLUDED.format_version, record = EXCLUDED.record",
                &[&self.workspace, &address, &version, &body],
            )
            .unwrap();
    }
    fn open_shared(&mut self, operation: &str, read_only: bool) -> Box<dyn StateStore> {
        self.open_shared_impl(operation, read_only)
    }
}

impl PgHarness {
    fn open_shared_impl(&mut self, operation: &str, read_only: bool) -> Box<dyn StateStore> {
        Box::new(
            PgStore::open(
                &self.url,
                &self.workspace,
                &shared_opts(operation, read_only),
            )
            .unwrap(),
        )
    }
}

impl Drop for PgHarness {
    fn drop(&mut self) {
        let mut c = admin(&self.url);
        for table in [
            "prov_resources",
            "prov_pending",
            "prov_history",
            "prov_locks",
            "prov_versions",
            "prov_resource_locks",
            "prov_meta",
        ] {
            let _ = c.execute(
                &format!("DELETE FROM {table} WHERE workspace = $1"),
                &[&self.workspace],
            );
        }
    }
}

#[test]
fn pg_store_conformance() {
    let Some(url) = pg_url("pg_store_conformance") else {
        return;
    };
    run_suite("postgres", &|| {
        Box::new(PgHarness {
            url: url.clone(),
            workspace: unique("conf"),
        })
    });
}

fn expect_pg_locked(res: Result<PgStore, StateError>) -> (LockInfo, String) {
    match res {
        Err(e @ StateError::Locked { .. }) => {
            let msg = e.to_string();
            let StateError::Locked { holder } = e else {
                unreachable!()
            };
            (*holder, msg)
        }
        Err(e) => panic!("expected Locked, got {e:?}"),
        Ok(_) => panic!("expected Locked, but the open succeeded"),
    }
}

fn password_of(url: &str) -> String {
    let c: postgres::Config = url.parse().unwrap();
    String::from_utf8(c.get_password().unwrap().to_vec()).unwrap()
}

#[test]
fn pg_lock_names_the_holder_across_sessions_and_waits() {
    let Some(url) = pg_url("pg_lock_names_the_holder_across_sessions_and_waits") else {
        return;
    };
    let ws = unique("lock");
    let first = PgStore::open(&url, &ws, &sled_opts("apply")).unwrap();
    assert!(first.lock_info().location.starts_with("postgresql://"));
    assert!(first
        .lock_info()
        .location
        .ends_with(&format!("(workspace {ws})")));
    let t = Instant::now();
    let (holder, msg) = expect_pg_locked(PgStore::open(&url, &ws, &sled_opts("plan")));
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "timeout 0 fails at once"
    );
    eprintln!("{msg}");
    assert_eq!(&holder, first.lock_info());
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    assert!(
        msg.contains("operation \"apply\"") && msg.contains(&holder.id),
        "{msg}"
    );
    assert!(!msg.contains(&password_of(&url)), "{msg}");
    let dbg = format!("{first:?}");
    assert!(!dbg.contains(&password_of(&url)), "{dbg}");
    // A read-only open takes the same lock; another workspace is not blocked.
    let mut ro = sled_opts("state list");
    ro.create = false;
    expect_pg_locked(PgStore::open(&url, &ws, &ro));
    let other = PgStore::open(&url, &unique("lock_other"), &sled_opts("apply")).unwrap();
    other.commit(&[Change::Put(rec("server.x", 1))]).unwrap();
    assert!(
        first.snapshot().unwrap().resources.is_empty(),
        "workspaces are separate"
    );

    first.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        drop(first);
    });
    let mut opts = sled_opts("apply");
    opts.lock_timeout = Duration::from_secs(5);
    let t = Instant::now();
    let second = PgStore::open(&url, &ws, &opts).unwrap();
    let waited = t.elapsed();
    eprintln!("waited {waited:?} for the lock");
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(second.meta().unwrap().serial, 1);
    releaser.join().unwrap();
    drop((second, other));
}

#[test]
fn pg_lock_dies_with_a_killed_process_and_force_unlock_clears_its_row() {
    let Some(url) = pg_url("pg_lock_dies_with_a_killed_process_and_force_unlock_clears_its_row")
    else {
        return;
    };
    let ws = unique("kill");
    let (mut child, mut lines) = spawn_child("pg-hold", Path::new(&ws));
    let ready = lines
        .find_map(|l| l.split_once("ready ").map(|(_, r)| r.trim().to_string()))
        .expect("child got the lock");
    let (pid, lock_id) = ready.split_once(' ').unwrap();
    let child_pid: u32 = pid.parse().unwrap();

    let (holder, msg) = expect_pg_locked(PgStore::open(&url, &ws, &sled_opts("plan")));
    eprintln!("{msg}");
    assert_eq!((holder.pid, holder.id.as_str()), (child_pid, lock_id));
    assert_eq!(holder.operation, "child-apply");

    // force-unlock cannot take a live session's lock: it names it and how to end it.
    assert!(matches!(
        force_unlock_pg(&url, &ws, "0000"),
        Err(StateError::LockIdMismatch {
            holder: Some(_),
            ..
        })
    ));
    match force_unlock_pg(&url, &ws, lock_id).unwrap_err() {
        e @ StateError::LockHeld { .. } => {
            let msg = e.to_string();
            eprintln!("{msg}");
            assert!(
                msg.contains(&format!("pid {child_pid}")) && msg.contains("pg_terminate_backend"),
                "{msg}"
            );
        }
        other => panic!("expected LockHeld, got {other:?}"),
    }

    // kill -9: the server ends the session and its lock; the holder row stays behind.
    child.kill().unwrap();
    child.wait().unwrap();
    let t = Instant::now();
    let cleared = loop {
        match force_unlock_pg(&url, &ws, lock_id) {
            Ok(ForceUnlock::StaleNoteCleared(h)) => break h,
            // The server may take a moment to notice the closed socket.
            Err(StateError::LockHeld { .. }) if t.elapsed() < Duration::from_secs(5) => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => panic!("expected StaleNoteCleared, got {other:?}"),
        }
    };
    assert_eq!(cleared.pid, child_pid);
    assert!(matches!(
        force_unlock_pg(&url, &ws, lock_id),
        Err(StateError::LockIdMismatch { holder: None, .. })
    ));
    let mut opts = sled_opts("apply");
    opts.lock_timeout = Duration::from_secs(5);
    let s = PgStore::open(&url, &ws, &opts).unwrap();
    assert_eq!(
        s.snapshot().unwrap().resources.len(),
        1,
        "the child's commit is kept"
    );
}

#[test]
fn pg_lock_dies_with_a_terminated_session() {
    let Some(url) = pg_url("pg_lock_dies_with_a_terminated_session") else {
        return;
    };
    let ws = unique("term");
    let first = PgStore::open(&url, &ws, &sled_opts("apply")).unwrap();
    first.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let mut c = admin(&url);
    let backend: i32 = c
        .query_one(
            "SELECT backend_pid FROM prov_locks WHERE workspace = $1",
            &[&ws],
        )
        .unwrap()
        .get(0);
    c.execute("SELECT pg_terminate_backend($1)", &[&backend])
        .unwrap();
    let mut opts = sled_opts("apply");
    opts.lock_timeout = Duration::from_secs(5);
    let second = PgStore::open(&url, &ws, &opts).unwrap();
    // The first store lost its session and lock: it can write nothing more.
    match first
        .commit(&[Change::Put(rec("server.b", 1))])
        .unwrap_err()
    {
        e @ StateError::Backend {
            kind: BackendErrorKind::ConnectionLost,
            ..
        } => eprintln!("{e}"),
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    let snap = second.snapshot().unwrap();
    assert_eq!(snap.meta.serial, 1);
    assert_eq!(snap.resources.keys().collect::<Vec<_>>(), vec!["server.a"]);
    drop(first);
    assert!(second.commit(&[]).is_ok(), "the new holder keeps its lock");
}

#[test]
fn pg_commit_failing_midway_is_rolled_back() {
    let Some(url) = pg_url("pg_commit_failing_midway_is_rolled_back") else {
        return;
    };
    let ws = unique("atomic");
    let s = PgStore::open(&url, &ws, &sled_opts("apply")).unwrap();
    s.commit(&[
        Change::Put(rec("server.a", 1)),
        Change::Put(rec("server.b", 1)),
        Change::PutPending(pending("server.p", "create")),
    ])
    .unwrap();
    s.commit(&[Change::Put(rec("server.a", 2))]).unwrap();
    let before = s.snapshot().unwrap();
    let history = s.history("server.a").unwrap();
    // The server rejects the last change of the commit, after the others were executed.
    let func = unique("prov_test_boom");
    let mut c = admin(&url);
    c.batch_execute(&format!(
        "CREATE FUNCTION {func}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.workspace = '{ws}' AND NEW.address = 'server.zz-boom' THEN \
         RAISE EXCEPTION 'boom'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER {func} BEFORE INSERT ON prov_resources \
         FOR EACH ROW EXECUTE FUNCTION {func}();"
    ))
    .unwrap();
    let res = s.commit(&[
        Change::Put(rec("server.a", 3)),
        Change::Delete("server.b".into()),
        Change::ClearPending("server.p".into()),
        Change::Put(rec("server.zz-boom", 1)),
    ]);
    c.batch_execute(&format!(
        "DROP TRIGGER {func} ON prov_resources; DROP FUNCTION {func}();"
    ))
    .unwrap();
    match res.unwrap_err() {
        e @ StateError::Backend { .. } => {
            assert!(e.to_string().contains("boom"), "{e}")
        }
        other => panic!("expected Backend, got {other:?}"),
    }
    assert_eq!(
        s.snapshot().unwrap(),
        before,
        "nothing of the failed commit applies"
    );
    assert_eq!(s.history("server.a").unwrap(), history);
    assert!(s.history("server.b").unwrap().is_empty());
    assert_eq!(
        s.commit(&[]).unwrap(),
        3,
        "the session goes on after a rollback"
    );
}

#[test]
fn pg_unreachable_server_is_a_clear_error() {
    // Needs no server: a port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let conn = format!("postgresql://prov:hunter2@127.0.0.1:{port}/infra");
    let t = Instant::now();
    let err = PgStore::open(&conn, "default", &sled_opts("plan")).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg} ({:?})", t.elapsed());
    assert!(
        matches!(
            err,
            StateError::Backend {
                kind: BackendErrorKind::Unreachable,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        msg.contains(&format!("PostgreSQL state at 127.0.0.1:{port}/infra")),
        "{msg}"
    );
    assert!(
        msg.contains("what to do") && msg.contains("running"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2") && !format!("{err:?}").contains("hunter2"));
    let err = force_unlock_pg(&conn, "default", "ab").unwrap_err();
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn pg_wrong_password_missing_database_and_missing_permission_are_clear_errors() {
    let Some(url) = pg_url("pg_wrong_password_missing_database_and_missing_permission") else {
        return;
    };
    let db = TempDb::new(&url);
    let role = unique("prov_role");
    let password = "right-Pw-1";
    {
        let mut c = db.admin();
        c.batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}'; \
             REVOKE CREATE ON SCHEMA public FROM PUBLIC;"
        ))
        .unwrap();
    }
    let drop_role = || {
        let _ = admin(&url).batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
    };

    let check = |res: Result<PgStore, StateError>, kind: BackendErrorKind, wants: &[&str]| {
        let err = res.unwrap_err();
        let msg = err.to_string();
        eprintln!("{msg}");
        match &err {
            StateError::Backend { kind: k, .. } => assert_eq!(*k, kind, "{msg}"),
            other => panic!("expected Backend, got {other:?}"),
        }
        assert!(
            msg.contains("PostgreSQL state at 127.0.0.1:") && msg.contains("what to do"),
            "{msg}"
        );
        for w in wants {
            assert!(msg.contains(w), "{msg} lacks {w}");
        }
        assert!(
            !msg.contains("wrong-Pw") && !msg.contains(password),
            "{msg}"
        );
    };
    check(
        PgStore::open(
            &db.conn(Some((&role, "wrong-Pw"))),
            "w",
            &sled_opts("apply"),
        ),
        BackendErrorKind::Authentication,
        &["password"],
    );
    check(
        PgStore::open(
            &pg_conn(&url, &unique("prov_missing_db"), None),
            "w",
            &sled_opts("apply"),
        ),
        BackendErrorKind::NoDatabase,
        &["createdb"],
    );
    // Right password, but the role may not create tables in the fresh database.
    check(
        PgStore::open(&db.conn(Some((&role, password))), "w", &sled_opts("apply")),
        BackendErrorKind::Permission,
        &[&role, "GRANT"],
    );
    assert!(db.prov_tables().is_empty(), "nothing was written");
    // A read-only open needs no permission to create: an empty state, nothing written.
    let mut ro = sled_opts("plan");
    ro.create = false;
    let s = PgStore::open(&db.conn(Some((&role, password))), "w", &ro).unwrap();
    assert!(!s.exists());
    assert_eq!(s.snapshot().unwrap(), Snapshot::default());
    drop(s);
    assert!(db.prov_tables().is_empty());
    drop(db);
    drop_role();
}

#[test]
fn pg_create_false_creates_nothing_and_newer_schema_is_refused() {
    let Some(url) = pg_url("pg_create_false_creates_nothing_and_newer_schema_is_refused") else {
        return;
    };
    let db = TempDb::new(&url);
    let mut ro = sled_opts("state list");
    ro.create = false;
    let s = PgStore::open(&db.conn(None), "ws", &ro).unwrap();
    assert!(!s.exists());
    assert_eq!(s.snapshot().unwrap(), Snapshot::default());
    assert_eq!(s.meta().unwrap(), StateMeta::default());
    assert_eq!(s.record("server.a").unwrap(), None);
    assert!(s.history("server.a").unwrap().is_empty());
    assert!(matches!(
        s.commit(&[Change::Put(rec("server.a", 1))]),
        Err(StateError::NotCreated { .. })
    ));
    assert!(s.set_outputs(Map::new()).is_err());
    drop(s);
    assert!(db.prov_tables().is_empty(), "no schema created");

    let s = PgStore::open(&db.conn(None), "ws", &sled_opts("apply")).unwrap();
    s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    drop(s);
    assert_eq!(
        db.prov_tables(),
        vec![
            "prov_history",
            "prov_locks",
            "prov_meta",
            "prov_pending",
            "prov_resource_locks",
            "prov_resources",
            "prov_schema",
            "prov_versions"
        ]
    );
    // Another workspace, read-only: empty, and no rows for it appear.
    let s = PgStore::open(&db.conn(None), "other", &ro).unwrap();
    assert!(!s.exists());
    drop(s);
    let mut c = db.admin();
    let rows: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM prov_meta WHERE workspace = 'other') + \
             (SELECT count(*) FROM prov_locks WHERE workspace = 'other')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(rows, 0);
    // A read-only open of the existing workspace sees its data.
    let s = PgStore::open(&db.conn(None), "ws", &ro).unwrap();
    assert!(s.exists());
    assert_eq!(s.snapshot().unwrap().resources.len(), 1);
    drop(s);

    // A schema of version 1 (before resource locks): read as it is by a read-only open (which
    // writes nothing), upgraded by a writing one.
    c.batch_execute(
        "DROP TABLE prov_versions; DROP TABLE prov_resource_locks; \
         UPDATE prov_schema SET version = 1",
    )
    .unwrap();
    let mut reader = OpenOptions::new("plan");
    reader.read_only = true;
    reader.create = false;
    let s = PgStore::open(&db.conn(None), "ws", &reader).unwrap();
    assert_eq!(s.snapshot().unwrap().resources.len(), 1);
    assert!(s.resource_locks().unwrap().is_empty());
    assert!(s.changed_since(&set(&["server.a"]), 0).unwrap().is_empty());
    drop(s);
    assert!(!db.prov_tables().contains(&"prov_versions".to_string()));
    let s = PgStore::open(&db.conn(None), "ws", &sled_opts("apply")).unwrap();
    s.commit(&[Change::Put(rec("server.a", 2))]).unwrap();
    assert_eq!(
        s.changed_since(&set(&["server.a"]), 0).unwrap(),
        set(&["server.a"])
    );
    drop(s);
    assert!(db.prov_tables().contains(&"prov_versions".to_string()));

    c.batch_execute("UPDATE prov_schema SET version = 99")
        .unwrap();
    for create in [true, false] {
        let mut opts = sled_opts("plan");
        opts.create = create;
        match PgStore::open(&db.conn(None), "ws", &opts).unwrap_err() {
            e @ StateError::UnsupportedFormat { found: 99, .. } => {
                assert!(e.to_string().contains("newer prov"), "{e}")
            }
            other => panic!("expected UnsupportedFormat, got {other:?}"),
        }
    }
}

#[test]
fn pg_concurrent_first_uses_create_the_schema_once() {
    let Some(url) = pg_url("pg_concurrent_first_uses_create_the_schema_once") else {
        return;
    };
    let db = TempDb::new(&url);
    let conn = db.conn(None);
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let conn = conn.clone();
            std::thread::spawn(move || {
                let s = PgStore::open(&conn, &format!("ws{i}"), &sled_opts("apply")).unwrap();
                s.commit(&[Change::Put(rec("server.a", i))]).unwrap()
            })
        })
        .collect();
    for w in workers {
        assert_eq!(w.join().unwrap(), 1);
    }
    let n: i64 = db
        .admin()
        .query_one("SELECT count(*) FROM prov_meta", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 4);
}

#[test]
fn pg_store_works_from_inside_a_tokio_runtime() {
    let Some(url) = pg_url("pg_store_works_from_inside_a_tokio_runtime") else {
        return;
    };
    // The engine calls the store from spawn_blocking, but a call from async code must not panic
    // either (the sync `postgres` crate would: it nests runtimes).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ws = unique("rt");
    rt.block_on(async {
        let s = PgStore::open(&url, &ws, &sled_opts("apply")).unwrap();
        s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
        let s = std::sync::Arc::new(s);
        let s2 = s.clone();
        tokio::task::spawn_blocking(move || s2.commit(&[]).unwrap())
            .await
            .unwrap();
        assert_eq!(s.meta().unwrap().serial, 2);
    });
}

#[test]
fn pg_read_only_open_needs_only_select_takes_no_lock_and_writes_nothing() {
    let Some(url) = pg_url("pg_read_only_open_needs_only_select_takes_no_lock_and_writes_nothing")
    else {
        return;
    };
    let db = TempDb::new(&url);
    let writer = PgStore::open(&db.conn(None), "w", &sled_opts("apply")).unwrap();
    writer.commit(&[Change::Put(rec("server.web", 1))]).unwrap();
    // A role that may only read (what an untrusted pull-request job is given).
    let role = unique("prov_reader");
    let password = "reader-Pw-1";
    db.admin()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD '{password}'; \
             GRANT USAGE ON SCHEMA public TO {role}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .unwrap();
    let holder = |db: &TempDb| -> String {
        db.admin()
            .query_one(
                "SELECT holder::text FROM prov_locks WHERE workspace = 'w'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    let before = holder(&db);
    // While the writer holds the lock, a read-only open succeeds and reads the state.
    let mut ro = sled_opts("plan --untrusted");
    ro.create = false;
    ro.read_only = true;
    let reader = PgStore::open(&db.conn(Some((&role, password))), "w", &ro).unwrap();
    let snap = reader.snapshot().unwrap();
    assert_eq!(snap.resources["server.web"], rec("server.web", 1));
    let err = reader
        .commit(&[Change::Put(rec("server.db", 1))])
        .unwrap_err();
    assert!(matches!(err, StateError::ReadOnly { .. }), "{err}");
    assert!(err.to_string().contains("read-only"), "{err}");
    drop(reader);
    assert_eq!(holder(&db), before, "the lock holder's row is the writer's");
    assert_eq!(writer.snapshot().unwrap().meta.serial, snap.meta.serial);
    drop(writer);
    drop(db);
    let _ = admin(&url).batch_execute(&format!("DROP ROLE IF EXISTS {role}"));
}

/// An apply alone opens sled once, not once per commit (every open snapshots the whole
/// database); a process waiting for the state is handed it — both stores here would keep an
/// idle session for an hour, so only the waiting room can end one — and the writer's next
/// commit opens a new session, which the reader's next snapshot gets handed in turn.
#[test]
fn sled_sessions_are_kept_between_commits_and_handed_to_waiters() {
    let (_tmp, dir) = workspace();
    let hour = Duration::from_secs(3600);
    let w = SledStore::open(&dir, &shared_opts("apply", false))
        .unwrap()
        .keep_idle(hour);
    let addresses: Vec<String> = (0..50).map(|i| format!("server.s{i}")).collect();
    let names: Vec<&str> = addresses.iter().map(String::as_str).collect();
    w.lock_resources(&set(&names), Duration::ZERO).unwrap();
    let opened = w.sessions_opened();
    for (i, a) in addresses.iter().enumerate() {
        w.commit(&[Change::Put(rec(a, i as u64))]).unwrap();
    }
    assert_eq!(w.sessions_opened(), opened, "50 commits, no new session");

    let r = SledStore::open(&dir, &shared_opts("plan", true))
        .unwrap()
        .keep_idle(hour);
    assert_eq!(r.snapshot().unwrap().resources.len(), 50);
    assert_eq!(r.sessions_opened(), 1);

    w.commit(&[Change::Put(rec("server.s0", 99))]).unwrap();
    assert_eq!(
        w.sessions_opened(),
        opened + 1,
        "handed over, then opened again"
    );
    let snap = r.snapshot().unwrap();
    assert_eq!(snap.resources["server.s0"].outputs["gen"], json!(99));
    assert_eq!(r.sessions_opened(), 2);
    drop(w);
    // The writer let go of its resource locks on drop, through the reader's handover.
    let again = SledStore::open(&dir, &shared_opts("apply", false)).unwrap();
    again.lock_resources(&set(&names), Duration::ZERO).unwrap();
}
