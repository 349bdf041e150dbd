//! The conformance suite every state backend must pass (run here against MemoryStore and
//! SledStore; the PostgreSQL backend plugs into `run_suite` too), followed by sled-specific tests:
//! locking, damaged files, `create: false`, file modes, kill -9 during commits, snapshot speed.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prov_state::*;
use serde_json::{json, Map};

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
    }
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
    /// Stores `raw` verbatim as the record at `address`; no store is open meanwhile.
    fn put_raw(&mut self, address: &str, raw: &[u8]);
}

struct MemoryHarness(MemoryStore);

impl Harness for MemoryHarness {
    fn open(&mut self) -> Box<dyn StateStore> {
        Box::new(self.0.clone())
    }
    fn put_raw(&mut self, address: &str, raw: &[u8]) {
        self.0.put_raw_record(address, raw);
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
}

type Check = fn(&mut dyn Harness);

const CHECKS: &[(&str, Check)] = &[
    ("empty snapshot", check_empty_snapshot),
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
    s.commit(&[Change::Put(rec("server.a", 1))]).unwrap();
    let before = s.snapshot().unwrap();
    let mut bad = rec("server.b", 1);
    bad.address = String::new();
    let err = s
        .commit(&[
            Change::Put(rec("server.a", 2)),
            Change::Delete("server.a".into()),
            Change::Put(rec("server.c", 1)),
            Change::Put(bad),
        ])
        .unwrap_err();
    assert!(matches!(err, StateError::InvalidChange { .. }), "{err:?}");
    assert_eq!(
        s.snapshot().unwrap(),
        before,
        "nothing of a failed commit applies"
    );
    // Changes apply in order within a commit: the later one wins.
    s.commit(&[
        Change::Put(rec("server.a", 2)),
        Change::Delete("server.a".into()),
        Change::Put(rec("server.c", 1)),
        Change::Put(rec("server.c", 3)),
    ])
    .unwrap();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 1);
    assert_eq!(snap.resources["server.c"], rec("server.c", 3));
}

fn check_newer_format(h: &mut dyn Harness) {
    let s = h.open();
    s.commit(&[Change::Put(rec("server.old", 1))]).unwrap();
    drop(s);
    let raw = json!({"format_version": RECORD_FORMAT_VERSION + 1, "record": {"address": "server.new", "shape": "unknown"}});
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
        json!({"format_version": 1, "record": other})
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
        path: ".prov/state.lock".into(),
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
        other => panic!("unknown child mode {other}"),
    }
}

/// Re-executes this test binary as a child running `child_process_helper` in `mode`.
fn spawn_child(mode: &str, dir: &Path) -> (Child, impl Iterator<Item = String>) {
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
        path: lock.clone(),
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
