//! Integration tests of the sim cluster: lifecycle of a cluster and its components, dependency
//! and existence checks, out-of-band edits of the files, latency and failure injection.

use prov_engine::registry::{ExtContext, Registry};
use prov_engine::testing::FakeProvider;
use prov_engine::traits::{
    Cluster, ClusterRequest, ComponentRequest, ErrorKind, ExtError, ExtResult, ServerTarget,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CHILD_MODE: &str = "PROV_SIM_TEST_CHILD";
const CHILD_DIR: &str = "PROV_SIM_TEST_DIR";
const SERVER_ID: &str = "sim-00000000abcd";

fn cluster_impl(dir: &Path) -> Arc<dyn Cluster> {
    let ctx = ExtContext {
        workspace_dir: dir.to_path_buf(),
        workspace_name: "ws".into(),
        name: "sim".into(),
        settings: json!({}),
    };
    prov_clusters::sim::factory()(&ctx).expect("sim cluster builds")
}

fn cluster_req(provider: &Arc<FakeProvider>, name: &str) -> ClusterRequest {
    ClusterRequest {
        address: format!("cluster.{name}"),
        name: name.into(),
        config: json!({"version": "1.0.0", "description": "test"}),
        servers: vec![ServerTarget {
            address: "server.web-01".into(),
            provider_id: SERVER_ID.into(),
            hostname: "web-01".into(),
            facts: json!({}),
            provider: provider.clone(),
        }],
        components: vec![],
    }
}

fn component(cluster: &ClusterRequest, name: &str, config: Value) -> ComponentRequest {
    ComponentRequest {
        address: format!("{}.{name}", cluster.address),
        cluster: cluster.clone(),
        name: name.into(),
        config,
    }
}

fn assert_kind<T: std::fmt::Debug>(r: ExtResult<T>, kind: ErrorKind) -> ExtError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "{e}");
    e
}

fn world(dir: &Path) -> PathBuf {
    dir.join(".prov/sim/clusters")
}

#[tokio::test]
async fn lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_impl(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let cr = cluster_req(&p, "buildkit");

    assert_kind(c.status(&cr).await, ErrorKind::NotFound);
    let created = c.create(&cr).await.unwrap();
    assert_eq!(created.status, "running");
    assert_eq!(created.endpoints, ["web-01"]);
    assert_eq!(created.outputs["server_ids"], json!([SERVER_ID]));
    assert!(world(dir.path()).join("buildkit.json").is_file());
    let st = c.status(&cr).await.unwrap();
    assert_eq!((st.status.as_str(), st.components.len()), ("running", 0));

    let containerd = component(
        &cr,
        "containerd",
        json!({"type": "taskserv", "version": "1.7.0"}),
    );
    let buildkit = component(
        &cr,
        "buildkit",
        json!({"type": "taskserv", "version": "0.12.0", "dependencies": ["containerd"]}),
    );
    let registry = component(
        &cr,
        "registry",
        json!({"type": "application", "version": "", "resources": {"replicas": 2}}),
    );
    let s = c.deploy_component(&containerd).await.unwrap();
    assert_eq!(
        (s.kind.as_str(), s.version.as_str(), s.replicas),
        ("taskserv", "1.7.0", 1)
    );
    c.deploy_component(&buildkit).await.unwrap();
    let s = c.deploy_component(&registry).await.unwrap();
    assert_eq!((s.version.as_str(), s.replicas), ("latest", 2));
    assert!(world(dir.path())
        .join("buildkit/components/registry.json")
        .is_file());

    let names: Vec<_> = c
        .list_components(&cr)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["buildkit", "containerd", "registry"]);
    assert_eq!(c.status(&cr).await.unwrap().components.len(), 3);

    assert_eq!(c.scale(&registry, 3).await.unwrap().replicas, 3);
    assert_eq!(
        c.upgrade(&buildkit, "0.13.0").await.unwrap().version,
        "0.13.0"
    );
    c.restart_component(&buildkit).await.unwrap();
    let s = c.component_status(&buildkit).await.unwrap().unwrap();
    assert_eq!(
        (s.version.as_str(), s.status.as_str()),
        ("0.13.0", "running")
    );

    c.remove_component(&buildkit).await.unwrap();
    assert_eq!(c.component_status(&buildkit).await.unwrap(), None);
    assert_kind(c.remove_component(&buildkit).await, ErrorKind::NotFound);
    assert_kind(c.scale(&buildkit, 2).await, ErrorKind::NotFound);
    assert_kind(c.upgrade(&buildkit, "1").await, ErrorKind::NotFound);
    assert_kind(c.restart_component(&buildkit).await, ErrorKind::NotFound);

    c.delete(&cr).await.unwrap();
    assert!(!world(dir.path()).join("buildkit.json").exists());
    assert!(!world(dir.path()).join("buildkit").exists());
    assert_kind(c.status(&cr).await, ErrorKind::NotFound);
    assert_kind(c.list_components(&cr).await, ErrorKind::NotFound);
    assert_kind(c.delete(&cr).await, ErrorKind::NotFound);
}

#[tokio::test]
async fn deploying_needs_the_cluster_and_the_dependencies() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_impl(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let cr = cluster_req(&p, "k");
    let a = component(&cr, "a", json!({"type": "taskserv"}));
    let b = component(&cr, "b", json!({"type": "taskserv", "dependencies": ["a"]}));
    assert_kind(c.deploy_component(&a).await, ErrorKind::NotFound);
    c.create(&cr).await.unwrap();
    let e = assert_kind(c.deploy_component(&b).await, ErrorKind::Failed);
    assert!(e.message.contains("depends on a"), "{e}");
    c.deploy_component(&a).await.unwrap();
    c.deploy_component(&b).await.unwrap();
    let bad = component(&cr, "../x", json!({}));
    assert_kind(c.deploy_component(&bad).await, ErrorKind::Invalid);
}

#[tokio::test]
async fn creating_on_a_missing_server_is_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_impl(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    p.remove(SERVER_ID);
    let e = assert_kind(c.create(&cluster_req(&p, "k")).await, ErrorKind::NotFound);
    assert!(e.message.contains("web-01"), "{e}");
    assert!(!world(dir.path()).join("k.json").exists());
}

#[tokio::test]
async fn a_stopped_component_degrades_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let c = cluster_impl(dir.path());
    let p = FakeProvider::with_server(SERVER_ID, "web-01");
    let cr = cluster_req(&p, "k");
    c.create(&cr).await.unwrap();
    let a = component(&cr, "a", json!({"type": "application"}));
    c.deploy_component(&a).await.unwrap();
    // An out-of-band edit of the component file (as a drift demo would do).
    let path = world(dir.path()).join("k/components/a.json");
    let mut rec: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    rec["status"] = json!("stopped");
    std::fs::write(&path, rec.to_string()).unwrap();
    assert_eq!(c.status(&cr).await.unwrap().status, "degraded");
    c.restart_component(&a).await.unwrap();
    assert_eq!(c.status(&cr).await.unwrap().status, "running");
}

#[test]
fn register_all_registers_sim() {
    let mut reg = Registry::new();
    prov_clusters::register_all(&mut reg);
    assert!(reg.has_cluster("sim"));
}

#[test]
fn environment_injects_failures_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_process_entry",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MODE, "env")
        .env(CHILD_DIR, dir.path())
        .env("PROV_SIM_FAIL_CLUSTERS", "bad, good/flaky")
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
    // The child must really have run the entry test (a renamed test would run none).
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
    let c = cluster_impl(&dir);
    let p = FakeProvider::with_server(SERVER_ID, "web-01");

    let t = Instant::now();
    let e = assert_kind(c.create(&cluster_req(&p, "bad")).await, ErrorKind::Failed);
    assert!(
        t.elapsed() >= Duration::from_millis(40),
        "{:?}",
        t.elapsed()
    );
    assert!(e.message.contains("injected failure"), "{e}");
    let good = cluster_req(&p, "good");
    c.create(&good).await.unwrap();
    assert_kind(
        c.deploy_component(&component(&good, "flaky", json!({})))
            .await,
        ErrorKind::Failed,
    );
    c.deploy_component(&component(&good, "steady", json!({})))
        .await
        .unwrap();
}
