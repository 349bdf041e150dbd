//! Integration tests of the sim taskserv: lifecycle, versions, a missing or stopped server, the
//! file layout shared with the sim provider's out-of-band edits, latency and failure injection.

use prov_engine::registry::{ExtContext, Registry};
use prov_engine::testing::FakeProvider;
use prov_engine::traits::{
    ErrorKind, ExtError, ExtResult, ServerStatus, ServerTarget, TaskServ, TaskservRequest,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_MODE: &str = "PROV_SIM_TEST_CHILD";
const CHILD_DIR: &str = "PROV_SIM_TEST_DIR";
const SERVER_ID: &str = "sim-00000000abcd";

fn taskserv(dir: &Path) -> Arc<dyn TaskServ> {
    let ctx = ExtContext {
        workspace_dir: dir.to_path_buf(),
        workspace_name: "ws".into(),
        name: "sim".into(),
        settings: json!({}),
    };
    prov_taskservs::sim::factory()(&ctx).expect("sim taskserv builds")
}

fn req(
    provider: &Arc<FakeProvider>,
    name: &str,
    version: Option<&str>,
    settings: Value,
) -> TaskservRequest {
    TaskservRequest {
        address: format!("taskserv.web-01.{name}"),
        name: name.into(),
        version: version.map(str::to_string),
        settings,
        server: ServerTarget {
            address: "server.web-01".into(),
            provider_id: SERVER_ID.into(),
            hostname: "web-01".into(),
            facts: json!({}),
            provider: provider.clone(),
        },
        health_check: None,
        output: None,
    }
}

fn record_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(".prov/sim/taskservs")
        .join(SERVER_ID)
        .join(format!("{name}.json"))
}

fn assert_kind<T: std::fmt::Debug>(r: ExtResult<T>, kind: ErrorKind) -> ExtError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "{e}");
    e
}

#[tokio::test]
async fn lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let ts = taskserv(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let r = req(&p, "redis", None, json!({"port": 6379}));

    let before = ts.status(&r).await.unwrap();
    assert!(!before.installed && !before.running && before.version.is_none());
    assert_eq!(ts.get_current_version(&r).await.unwrap(), None);

    let installed = ts.install(&r).await.unwrap();
    assert_eq!(
        installed.version.as_deref(),
        Some("2.0.0"),
        "no version means latest"
    );
    assert_eq!(installed.status, "running");
    assert_eq!(installed.outputs["server_id"], SERVER_ID);
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(record_path(dir.path(), "redis")).unwrap())
            .unwrap();
    assert_eq!(rec["name"], "redis");
    assert_eq!(rec["settings"], json!({"port": 6379}));
    assert_eq!(rec["configured"], 0);

    let st = ts.status(&r).await.unwrap();
    assert!(st.installed && st.running);
    assert_eq!(st.healthy, Some(true));
    assert_eq!(st.version.as_deref(), Some("2.0.0"));

    let r2 = req(&p, "redis", None, json!({"port": 6380}));
    ts.configure(&r2).await.unwrap();
    ts.configure(&r2).await.unwrap();
    let st = ts.status(&r).await.unwrap();
    assert_eq!(st.detail["configured"], 2);
    assert_eq!(st.detail["settings"], json!({"port": 6380}));

    let up = ts.upgrade(&r, "1.1.0").await.unwrap();
    assert_eq!(up.version.as_deref(), Some("1.1.0"));
    assert_eq!(
        ts.get_current_version(&r).await.unwrap().as_deref(),
        Some("1.1.0")
    );
    let check = ts.check_updates(&r).await.unwrap();
    assert_eq!(check.current.as_deref(), Some("1.1.0"));
    assert_eq!(check.latest.as_deref(), Some("2.0.0"));
    assert!(check.update_available);

    ts.restart(&r).await.unwrap();
    assert_eq!(ts.status(&r).await.unwrap().detail["restarts"], 1);
    assert_eq!(
        ts.get_available_versions(&r).await.unwrap(),
        ["1.0.0", "1.1.0", "2.0.0"]
    );

    ts.uninstall(&r).await.unwrap();
    assert!(!record_path(dir.path(), "redis").exists());
    assert!(!ts.status(&r).await.unwrap().installed);
    assert_kind(ts.uninstall(&r).await, ErrorKind::NotFound);
    assert_kind(ts.configure(&r).await, ErrorKind::NotFound);
    assert_kind(ts.restart(&r).await, ErrorKind::NotFound);
    assert_kind(ts.upgrade(&r, "2.0.0").await, ErrorKind::NotFound);
    let check = ts.check_updates(&r).await.unwrap();
    assert!(check.current.is_none() && !check.update_available);
}

#[tokio::test]
async fn versions_come_from_settings_or_the_default_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let ts = taskserv(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let settings = json!({"available_versions": ["1.9.0", "1.10.0", "1.2.0"]});
    let r = req(&p, "etcd", Some("latest"), settings.clone());
    assert_eq!(
        ts.get_available_versions(&r).await.unwrap(),
        ["1.2.0", "1.9.0", "1.10.0"]
    );
    assert_eq!(
        ts.install(&r).await.unwrap().version.as_deref(),
        Some("1.10.0")
    );
    let check = ts.check_updates(&r).await.unwrap();
    assert!(!check.update_available);

    let bad = req(&p, "etcd", Some("3.0.0"), settings);
    let e = assert_kind(ts.install(&bad).await, ErrorKind::Invalid);
    assert!(e.message.contains("\"3.0.0\""), "{e}");
    assert!(!ts.validate(&bad).await.unwrap().valid());
    assert!(ts.validate(&r).await.unwrap().valid());
    let wrong = req(&p, "etcd", None, json!({"available_versions": "1.0"}));
    let v = ts.validate(&wrong).await.unwrap();
    assert!(v.errors[0].contains("available_versions"), "{v:?}");
    let odd_name = req(&p, "../etc", None, json!({}));
    assert!(!ts.validate(&odd_name).await.unwrap().valid());
    assert_kind(ts.install(&odd_name).await, ErrorKind::Invalid);
}

#[tokio::test]
async fn a_missing_server_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let ts = taskserv(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let r = req(&p, "redis", Some("1.0.0"), json!({}));
    ts.install(&r).await.unwrap();
    p.remove(SERVER_ID);
    let e = assert_kind(ts.status(&r).await, ErrorKind::NotFound);
    assert!(
        e.message.contains("web-01") && e.message.contains(SERVER_ID),
        "{e}"
    );
    assert_kind(ts.install(&r).await, ErrorKind::NotFound);
    assert_kind(ts.configure(&r).await, ErrorKind::NotFound);
    assert_kind(ts.uninstall(&r).await, ErrorKind::NotFound);
    assert_kind(ts.get_current_version(&r).await, ErrorKind::NotFound);
    assert_kind(ts.check_updates(&r).await, ErrorKind::NotFound);
}

#[tokio::test]
async fn a_stopped_server_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ts = taskserv(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let r = req(&p, "redis", None, json!({}));
    ts.install(&r).await.unwrap();
    p.edit(SERVER_ID, |s| s.status = ServerStatus::Stopped);
    let st = ts.status(&r).await.unwrap();
    assert!(st.installed && !st.running);
    assert_eq!(st.detail["server_status"], "stopped");
    let e = assert_kind(ts.restart(&r).await, ErrorKind::Failed);
    assert!(e.message.contains("not running"), "{e}");
    assert_kind(
        ts.install(&req(&p, "nginx", None, json!({}))).await,
        ErrorKind::Failed,
    );
    // Removing software from a stopped server is allowed.
    ts.uninstall(&r).await.unwrap();
}

#[tokio::test]
async fn out_of_band_edits_of_the_record_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let ts = taskserv(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let r = req(&p, "redis", Some("1.1.0"), json!({}));
    ts.install(&r).await.unwrap();
    // What prov-providers' World::stop_taskserv / set_taskserv_version do to the file.
    let path = record_path(dir.path(), "redis");
    let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    rec["status"] = json!("stopped");
    rec["version"] = json!("0.9.0");
    rec["updated_at"] = json!("2024-01-01T00:00:00Z");
    std::fs::write(&path, rec.to_string()).unwrap();

    let st = ts.status(&r).await.unwrap();
    assert!(st.installed && !st.running);
    assert_eq!(st.version.as_deref(), Some("0.9.0"));
    assert!(ts.check_updates(&r).await.unwrap().update_available);
    ts.restart(&r).await.unwrap();
    assert!(ts.status(&r).await.unwrap().running);
}

#[test]
fn register_all_registers_sim() {
    let mut reg = Registry::new();
    prov_taskservs::register_all(&mut reg);
    assert!(reg.has_taskserv("sim"));
}

#[test]
fn environment_injects_failures_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "sim::child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, "env")
        .env(CHILD_DIR, dir.path())
        .env("PROV_SIM_FAIL_TASKSERVS", "web-01/redis, other/x")
        .env("PROV_SIM_LATENCY_MS", "40")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The child must really have run the entry test (a renamed module would run none).
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Not a test of its own: the body of the child process the test above starts.
#[tokio::test]
async fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    assert_eq!(mode, "env");
    let dir = PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let ts = taskserv(&dir);
    let p = FakeProvider::with_server(SERVER_ID, "web-01");

    let t = Instant::now();
    let e = assert_kind(
        ts.install(&req(&p, "redis", None, json!({}))).await,
        ErrorKind::Failed,
    );
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "{:?}",
        t.elapsed()
    );
    assert!(
        e.message.contains("injected failure") && e.message.contains("web-01/redis"),
        "{e}"
    );
    assert!(
        !record_path(&dir, "redis").exists(),
        "the failure changed nothing"
    );
    ts.install(&req(&p, "nginx", None, json!({})))
        .await
        .unwrap();
}
