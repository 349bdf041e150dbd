//! The built-in catalog for real: redis and etcd from Debian packages, installed by their
//! catalog scripts on this machine (local transport, a sandbox directory as the server root),
//! health-checked, reconfigured, stopped out of band and uninstalled. Needs root and apt
//! (skipped otherwise, failing instead when PROV_REQUIRE_ROOT_NET=1).

use super::fixture::{collector, request, BoxProvider};
use prov_engine::registry::Registry;
use prov_engine::traits::TaskServ;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;

fn runnable(test: &str) -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let apt = Path::new("/usr/bin/apt-get").is_file();
    if root && apt {
        return true;
    }
    assert!(
        std::env::var("PROV_REQUIRE_ROOT_NET").as_deref() != Ok("1"),
        "{test}: PROV_REQUIRE_ROOT_NET=1 but this is not root with apt-get"
    );
    println!("SKIPPED: {test}: needs root and apt-get (Debian/Ubuntu)");
    false
}

fn catalog(ws: &Path, name: &str) -> Arc<dyn TaskServ> {
    let mut reg = Registry::new();
    prov_taskservs::register_extensions(&mut reg, &[]).unwrap();
    reg.bind(ws.to_path_buf(), &Default::default())
        .taskserv(name)
        .unwrap()
}

/// Waits (up to 20 s) until process `pid` has exited: redis saves its data on SIGTERM first, which
/// takes longer on a slow disk than any fixed pause.
fn wait_gone(pid: &str) {
    let stat = format!("/proc/{}/stat", pid.trim());
    let t = std::time::Instant::now();
    // Gone, or a zombie its parent has yet to reap.
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            t.elapsed().as_secs() < 20,
            "process {pid} still runs 20 s after kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_from_the_catalog_for_real() {
    if !runnable("redis_from_the_catalog_for_real") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let p = BoxProvider::local(server.path());
    let t = catalog(ws.path(), "redis");
    let port = free_port();
    let (sink, lines) = collector();
    let mut req = request(
        &p,
        "redis",
        None,
        json!({"port": port, "maxmemory": "32mb"}),
    );
    req.output = Some(sink);
    let r = t.install(&req).await.unwrap();
    assert!(
        r.version.as_deref().is_some_and(|v| v.starts_with('7')),
        "{r:?}"
    );
    assert_eq!(r.outputs["endpoint"], format!("127.0.0.1:{port}"));
    assert!(lines
        .lock()
        .unwrap()
        .iter()
        .any(|l| l == "health check passed"));
    let conf = std::fs::read_to_string(server.path().join("etc/prov/redis/redis.conf")).unwrap();
    assert!(
        conf.contains(&format!("port {port}\n")) && conf.contains("maxmemory 32mb\n"),
        "{conf}"
    );
    let s = t.status(&req).await.unwrap();
    assert!(s.running && s.healthy == Some(true), "{s:?}");

    // New settings: configure restarts it with them (a new pid, the setting live).
    let pidfile = server.path().join("var/lib/prov/redis/redis.pid");
    let pid1 = std::fs::read_to_string(&pidfile).unwrap();
    let req2 = request(
        &p,
        "redis",
        None,
        json!({"port": port, "maxmemory": "48mb"}),
    );
    t.configure(&req2).await.unwrap();
    let pid2 = std::fs::read_to_string(&pidfile).unwrap();
    assert_ne!(pid1, pid2);
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string(), "config", "get", "maxmemory"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(&(48 * 1024 * 1024).to_string()));

    let versions = t.get_available_versions(&req2).await.unwrap();
    assert!(versions.iter().any(|v| v.starts_with("7.")), "{versions:?}");
    let u = t.check_updates(&req2).await.unwrap();
    assert_eq!(u.current, r.version);

    // Stopped out of band: installed, not running.
    std::process::Command::new("kill")
        .arg(pid2.trim())
        .status()
        .unwrap();
    wait_gone(&pid2);
    let s = t.status(&req2).await.unwrap();
    assert!(s.installed && !s.running, "{s:?}");

    t.uninstall(&req2).await.unwrap();
    assert!(!t.status(&req2).await.unwrap().installed);
}

#[tokio::test]
async fn etcd_from_the_catalog_for_real() {
    if !runnable("etcd_from_the_catalog_for_real") {
        return;
    }
    let ws = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let p = BoxProvider::local(server.path());
    let t = catalog(ws.path(), "etcd");
    let (cp, pp) = (free_port(), free_port());
    let req = request(
        &p,
        "etcd",
        None,
        json!({"client_port": cp, "peer_port": pp}),
    );
    let r = t.install(&req).await.unwrap();
    assert!(
        r.version.as_deref().is_some_and(|v| v.starts_with('3')),
        "{r:?}"
    );
    assert_eq!(r.outputs["client_url"], format!("http://127.0.0.1:{cp}"));
    let s = t.status(&req).await.unwrap();
    assert!(s.running && s.healthy == Some(true), "{s:?}");
    let req2 = request(
        &p,
        "etcd",
        None,
        json!({"client_port": cp, "peer_port": pp, "snapshot_count": 5000}),
    );
    t.configure(&req2).await.unwrap();
    t.uninstall(&req2).await.unwrap();
    assert!(!t.status(&req2).await.unwrap().installed);
}
