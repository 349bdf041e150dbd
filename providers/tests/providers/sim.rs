//! Integration tests of the sim provider and its world: lifecycle, catalogue, shared files,
//! out-of-band edits, latency, failure injection and concurrency (threads and processes).

use prov_engine::registry::{ExtContext, Registry};
use prov_engine::traits::{
    ErrorKind, ExtError, FirewallRule, Ownership, Provider, ServerSpec, ServerStatus, ServerUpdate,
};
use prov_providers::sim::{self, World};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Set in a child process started by a test: what the child should do.
const CHILD_MODE: &str = "PROV_SIM_TEST_CHILD";
const CHILD_DIR: &str = "PROV_SIM_TEST_DIR";

fn ctx(dir: &Path, settings: Value) -> ExtContext {
    ExtContext {
        workspace_dir: dir.to_path_buf(),
        workspace_name: "ws".into(),
        name: "sim".into(),
        settings,
    }
}

fn provider(dir: &Path, settings: Value) -> Arc<dyn Provider> {
    sim::factory()(&ctx(dir, settings)).expect("sim provider builds")
}

fn spec(hostname: &str) -> ServerSpec {
    ServerSpec {
        hostname: hostname.into(),
        plan: "small".into(),
        zone: "sim-a".into(),
        os: "ubuntu-22.04".into(),
        ssh_keys: vec![],
        tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        firewall_rules: vec![],
        storage: json!({"size": 25}),
        network: Value::Null,
    }
}

fn owner(address: &str) -> Ownership {
    Ownership {
        workspace: "ws".into(),
        address: address.into(),
    }
}

fn rule(port: &str) -> FirewallRule {
    FirewallRule {
        direction: "ingress".into(),
        protocol: "tcp".into(),
        port: Some(port.into()),
        source: None,
        destination: None,
        action: "allow".into(),
    }
}

fn is_documentation_or_benchmark_ip(ip: &str) -> bool {
    let ip: Ipv4Addr = ip.parse().expect("an IPv4 address");
    let o = ip.octets();
    matches!(
        o,
        [203, 0, 113, _] | [198, 51, 100, _] | [192, 0, 2, _] | [198, 18..=19, _, _]
    )
}

fn assert_kind<T: std::fmt::Debug>(r: Result<T, ExtError>, kind: ErrorKind) -> ExtError {
    let e = r.expect_err("expected an error");
    assert_eq!(e.kind, kind, "{e}");
    e
}

fn leftover_temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

/// Re-runs this test binary as a child process executing `child_process_entry` in `mode`.
fn spawn_child(mode: &str, dir: &Path, env: &[(&str, &str)]) -> std::process::Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "sim::child_process_entry",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_MODE, mode)
    .env(CHILD_DIR, dir)
    .env_remove("PROV_SIM_LATENCY_MS")
    .env_remove("PROV_SIM_FAIL_SERVERS")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("child test process starts")
}

fn wait_ok(child: std::process::Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "child process failed: {:?}\n{}{}",
        out.status,
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

#[tokio::test]
async fn lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));

    let created = p
        .create_server(&spec("web-01"), &owner("server.web-01"))
        .await
        .unwrap();
    let id = created.id.clone();
    assert!(id.starts_with("sim-") && id.len() == 16, "{id}");
    assert_eq!(created.status, ServerStatus::Running);
    assert_eq!(created.hostname, "web-01");
    assert!(is_documentation_or_benchmark_ip(
        created.public_ip.as_deref().unwrap()
    ));
    assert!(created.private_ip.as_deref().unwrap().starts_with("10."));
    assert_eq!(created.tags["prov:workspace"], "ws");
    assert_eq!(created.tags["prov:address"], "server.web-01");
    assert_eq!(created.tags["role"], "web");
    assert_eq!(created.extra["storage"], json!({"size": 25}));
    assert_eq!(created.extra["boots"], json!(1));
    assert!(dir
        .path()
        .join(".prov/sim/servers")
        .join(format!("{id}.json"))
        .is_file());

    let info = p.get_server_info(&id).await.unwrap().expect("exists");
    assert_eq!(info, created);
    let listed = p.list_servers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, id);

    p.stop_server(&id).await.unwrap();
    assert_eq!(
        p.get_server_info(&id).await.unwrap().unwrap().status,
        ServerStatus::Stopped
    );
    p.start_server(&id).await.unwrap();
    let info = p.get_server_info(&id).await.unwrap().unwrap();
    assert_eq!(info.status, ServerStatus::Running);
    assert_eq!(info.extra["boots"], json!(2));
    p.reboot_server(&id).await.unwrap();
    let info = p.get_server_info(&id).await.unwrap().unwrap();
    assert_eq!(info.status, ServerStatus::Running);
    assert_eq!(info.extra["boots"], json!(3));

    let before = spec("web-01");
    let mut after = before.clone();
    after.plan = "medium".into();
    after.tags = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    after.firewall_rules = vec![rule("22")];
    let updated = p
        .update_server(&id, &ServerUpdate { before, after })
        .await
        .unwrap();
    assert_eq!(updated.id, id, "updated in place");
    assert_eq!(updated.plan, "medium");
    assert_eq!(updated.tags["env"], "prod");
    assert!(
        !updated.tags.contains_key("role"),
        "desired tags replace old ones"
    );
    assert_eq!(
        updated.tags["prov:address"], "server.web-01",
        "ownership kept"
    );
    assert_eq!(updated.firewall_rules, vec![rule("22")]);

    p.configure_firewall(&id, &[rule("80"), rule("8000-8100")])
        .await
        .unwrap();
    let info = p.get_server_info(&id).await.unwrap().unwrap();
    assert_eq!(info.firewall_rules, vec![rule("80"), rule("8000-8100")]);
    let mut bad = rule("80");
    bad.protocol = "sctp".into();
    let e = assert_kind(p.configure_firewall(&id, &[bad]).await, ErrorKind::Invalid);
    assert!(e.message.contains("sctp"), "{e}");

    let ssh = p.get_ssh_access(&id).await.unwrap();
    assert_eq!(Some(ssh.host), info.public_ip);
    assert_eq!(
        (ssh.port, ssh.user.as_str(), ssh.key_path),
        (22, "root", None)
    );

    p.delete_server(&id).await.unwrap();
    assert_eq!(p.get_server_info(&id).await.unwrap(), None);
    assert!(p.list_servers().await.unwrap().is_empty());
    assert_kind(p.delete_server(&id).await, ErrorKind::NotFound);
    assert_kind(p.start_server(&id).await, ErrorKind::NotFound);
    assert_kind(p.get_ssh_access(&id).await, ErrorKind::NotFound);
    assert_kind(p.delete_server("../../etc").await, ErrorKind::NotFound);
    assert_eq!(p.get_server_info("../x").await.unwrap(), None);
    assert!(leftover_temp_files(&dir.path().join(".prov/sim/servers")).is_empty());
}

#[tokio::test]
async fn invalid_plan_and_zone_name_the_bad_and_the_valid_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));
    let mut s = spec("web-01");
    s.plan = "huge".into();
    let e = assert_kind(
        p.create_server(&s, &owner("server.web-01")).await,
        ErrorKind::Invalid,
    );
    assert!(e.message.contains("\"huge\""), "{e}");
    assert!(e.message.contains("small, medium, large"), "{e}");

    let mut s = spec("web-01");
    s.zone = "z1".into();
    let e = assert_kind(
        p.create_server(&s, &owner("server.web-01")).await,
        ErrorKind::Invalid,
    );
    assert!(e.message.contains("\"z1\""), "{e}");
    assert!(e.message.contains("sim-a, sim-b, sim-c"), "{e}");
    assert!(
        World::open(dir.path()).unwrap().is_empty().unwrap(),
        "nothing created"
    );
}

#[tokio::test]
async fn update_refuses_what_forces_a_replacement() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));
    let id = p
        .create_server(&spec("a"), &owner("server.a"))
        .await
        .unwrap()
        .id;
    for (attr, change) in [
        (
            "zone",
            Box::new(|s: &mut ServerSpec| s.zone = "sim-b".into()) as Box<dyn Fn(&mut ServerSpec)>,
        ),
        (
            "os",
            Box::new(|s: &mut ServerSpec| s.os = "debian-12".into()),
        ),
        (
            "storage",
            Box::new(|s: &mut ServerSpec| s.storage = json!({"size": 50})),
        ),
        (
            "hostname",
            Box::new(|s: &mut ServerSpec| s.hostname = "b".into()),
        ),
    ] {
        let before = spec("a");
        let mut after = before.clone();
        change(&mut after);
        let e = assert_kind(
            p.update_server(&id, &ServerUpdate { before, after }).await,
            ErrorKind::Invalid,
        );
        assert!(e.message.starts_with(attr), "{e}");
        assert!(p.replace_on_change().contains(&attr));
    }
    let before = spec("a");
    let mut after = before.clone();
    after.plan = "xl".into();
    let e = assert_kind(
        p.update_server(&id, &ServerUpdate { before, after }).await,
        ErrorKind::Invalid,
    );
    assert!(e.message.contains("valid plans"), "{e}");
    assert_eq!(p.get_server_info(&id).await.unwrap().unwrap().plan, "small");
}

#[tokio::test]
async fn provider_metadata_and_catalogue() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({"parallelism": 3}));
    assert_eq!(p.name(), "sim");
    assert_eq!(
        p.replace_on_change(),
        &["zone", "os", "storage", "hostname"]
    );
    assert_eq!(p.default_taskserv(), Some("sim"));
    assert_eq!(p.default_cluster(), Some("sim"));
    assert_eq!(p.parallelism(), Some(3));
    assert_eq!(provider(dir.path(), json!({})).parallelism(), None);

    let plans = p.get_plans().await.unwrap();
    let plans: Vec<_> = plans
        .iter()
        .map(|p| (p.name.as_str(), p.cores, p.memory_mb, p.storage_gb))
        .collect();
    assert_eq!(
        plans,
        [
            ("small", 1, 1024, 25),
            ("medium", 2, 4096, 50),
            ("large", 4, 8192, 100)
        ]
    );
    let zones: Vec<_> = p
        .get_zones()
        .await
        .unwrap()
        .into_iter()
        .map(|z| z.name)
        .collect();
    assert_eq!(zones, ["sim-a", "sim-b", "sim-c"]);
    let pricing = p.get_pricing().await.unwrap();
    // A price for every plan the sim offers, in its own currency.
    let priced: Vec<(&str, f64)> = pricing
        .iter()
        .map(|x| (x.plan.as_str(), x.monthly))
        .collect();
    assert_eq!(priced, [("small", 5.0), ("medium", 20.0), ("large", 40.0)]);
    assert!(pricing
        .iter()
        .all(|x| x.currency == "SIM" && x.zone.is_none() && x.hourly > 0.0));
    crate::assert_prices_every_plan(&*p).await;

    let info = p.info().await.unwrap();
    assert_eq!(info.name, "sim");
    assert!(info
        .supported_operations
        .iter()
        .any(|o| o == "create-server"));
    assert!(p.test_connection().await.unwrap().success);

    let ok = p
        .validate_config(&json!({"latency_ms": 1.5, "defaults": {"plan": "small"}}))
        .await
        .unwrap();
    assert!(ok.valid(), "{ok:?}");
    // A key the schema does not name is an error naming it (a typo is never ignored).
    let typo = p
        .validate_config(&json!({"latency_ms": 1.5, "anything": true}))
        .await
        .unwrap();
    assert!(
        typo.errors == ["providers.sim.anything: unknown setting (known: api, auth, defaults, fail_call, fail_servers, features, latency_ms, parallelism, read_batch)"],
        "{typo:?}"
    );
    let v = p
        .validate_config(&json!({"latency_ms": "fast", "fail_servers": [1], "fail_call": -2}))
        .await
        .unwrap();
    assert_eq!(v.errors.len(), 3, "{v:?}");
    for key in ["latency_ms", "fail_servers", "fail_call"] {
        assert!(v.errors.iter().any(|e| e.contains(key)), "{key}: {v:?}");
    }
}

#[test]
fn wrong_setting_types_fail_the_factory_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = sim::factory()(&ctx(dir.path(), json!({"latency_ms": -5})))
        .err()
        .expect("rejected");
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("latency_ms"), "{e}");
    let e = sim::factory()(&ctx(dir.path(), json!({"parallelism": "many"})))
        .err()
        .expect("rejected");
    assert!(e.message.contains("parallelism"), "{e}");
}

#[test]
fn register_all_registers_sim() {
    let mut reg = Registry::new();
    prov_providers::register_all(&mut reg);
    assert!(reg.has_provider("sim"));
}

#[tokio::test]
async fn two_world_handles_see_the_same_servers() {
    let dir = tempfile::tempdir().unwrap();
    let w1 = World::open(dir.path()).unwrap();
    let w2 = World::open(dir.path()).unwrap();
    assert!(w1.is_empty().unwrap());
    let a = w1.add_unmanaged_server("a", BTreeMap::new()).unwrap();
    let b = w2.add_unmanaged_server("b", BTreeMap::new()).unwrap();
    assert_ne!(
        a.public_ip, b.public_ip,
        "two handles never hand out one address"
    );
    assert_eq!(w2.get_server(&a.id).unwrap(), Some(a.clone()));
    assert_eq!(w1.server_count().unwrap(), 2);
    assert_eq!(w2.list_servers().unwrap(), vec![a.clone(), b.clone()]);

    // A provider is one more handle on the same files.
    let p = provider(dir.path(), json!({}));
    let c = p
        .create_server(&spec("c"), &owner("server.c"))
        .await
        .unwrap();
    assert_eq!(w1.get_server(&c.id).unwrap().unwrap().to_info(), c);
    w2.set_server_attribute(&c.id, "plan", json!("large"))
        .unwrap();
    assert_eq!(w1.resolve("c").unwrap().plan, "large");
    assert_eq!(p.list_servers().await.unwrap().len(), 3);
}

#[tokio::test]
async fn out_of_band_edits_are_visible_to_the_provider() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));
    let w = World::open(dir.path()).unwrap();
    let web = p
        .create_server(&spec("web-01"), &owner("server.web-01"))
        .await
        .unwrap();
    let db = p
        .create_server(&spec("db-01"), &owner("server.db-01"))
        .await
        .unwrap();

    // set: by hostname and by id.
    w.set_server_attribute("web-01", "plan", json!("large"))
        .unwrap();
    w.set_server_attribute(&web.id, "status", json!("stopped"))
        .unwrap();
    w.set_server_attribute("web-01", "tags.env", json!("staging"))
        .unwrap();
    w.set_server_attribute("web-01", "tags.role", Value::Null)
        .unwrap();
    let info = p.get_server_info(&web.id).await.unwrap().unwrap();
    assert_eq!(info.plan, "large");
    assert_eq!(info.status, ServerStatus::Stopped);
    assert_eq!(info.tags["env"], "staging");
    assert!(!info.tags.contains_key("role"));
    let e = w
        .set_server_attribute("web-01", "status", json!("exploded"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalid);
    let e = w
        .set_server_attribute("web-01", "id", json!("sim-000000000000"))
        .unwrap_err();
    assert!(e.to_string().contains("settable"), "{e}");

    // delete behind prov's back.
    w.delete_server_out_of_band("db-01").unwrap();
    assert_eq!(p.get_server_info(&db.id).await.unwrap(), None);
    assert_kind(p.delete_server(&db.id).await, ErrorKind::NotFound);
    assert_eq!(
        w.delete_server_out_of_band("db-01").unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // a server prov does not know of.
    let stray = w
        .add_unmanaged_server("stray", BTreeMap::from([("team".into(), "ops".into())]))
        .unwrap();
    assert!(!stray.is_managed());
    let listed = p.list_servers().await.unwrap();
    let found = listed.iter().find(|s| s.id == stray.id).expect("listed");
    assert!(!found.tags.contains_key("prov:workspace"));
    assert_eq!(found.tags["team"], "ops");
    assert_eq!(w.find_by_hostname("stray").unwrap().len(), 1);

    // an ambiguous hostname is refused.
    w.add_unmanaged_server("stray", BTreeMap::new()).unwrap();
    let e = w.delete_server_out_of_band("stray").unwrap_err();
    assert!(e.to_string().contains("matches 2 servers"), "{e}");
    assert_eq!(w.server_count().unwrap(), 3);
}

#[test]
fn out_of_band_taskserv_edits_follow_the_layout() {
    let dir = tempfile::tempdir().unwrap();
    let w = World::open(dir.path()).unwrap();
    let s = w.add_unmanaged_server("web-01", BTreeMap::new()).unwrap();
    // What the sim taskserv writes (prov-taskservs' sim::InstalledTaskserv).
    let ts_dir = w.root().join("taskservs").join(&s.id);
    std::fs::create_dir_all(&ts_dir).unwrap();
    let record = json!({
        "name": "redis", "version": "1.0.0", "settings": {}, "status": "running",
        "installed_at": "2024-01-01T00:00:00Z", "configured": 0, "restarts": 0,
        "server_id": s.id, "hostname": "web-01", "updated_at": null,
    });
    std::fs::write(ts_dir.join("redis.json"), record.to_string()).unwrap();

    w.stop_taskserv("web-01", "redis").unwrap();
    w.set_taskserv_version(&s.id, "redis", "0.9.0").unwrap();
    let listed = w.list_taskservs("web-01").unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["status"], "stopped");
    assert_eq!(listed[0]["version"], "0.9.0");
    assert_eq!(listed[0]["configured"], 0, "other fields untouched");
    assert_eq!(
        w.stop_taskserv("web-01", "nginx").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        w.stop_taskserv("nope", "redis").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Deleting the server takes its taskservs with it.
    w.delete_server_out_of_band("web-01").unwrap();
    assert!(!ts_dir.exists());
}

#[tokio::test]
async fn latency_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({"latency_ms": 50}));
    let t = Instant::now();
    p.get_plans().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let s = p
        .create_server(&spec("a"), &owner("server.a"))
        .await
        .unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    p.get_server_info(&s.id).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let page = p.get_servers_info(std::slice::from_ref(&s.id)).await;
    assert!(matches!(page.as_slice(), [Ok(Some(_))]), "{page:?}");
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
    // A call that fails (injected, before the world is touched) takes the latency too.
    let failing = provider(dir.path(), json!({"latency_ms": 50, "fail_call": 1}));
    let t = Instant::now();
    let e = failing
        .create_server(&spec("b"), &owner("server.b"))
        .await
        .unwrap_err();
    assert!(e.message.contains("injected failure"), "{e}");
    assert!(
        t.elapsed() >= Duration::from_millis(50),
        "{:?}",
        t.elapsed()
    );
}

/// A call given up on (a timeout, an interrupt) stops waiting: its latency is not a blocking
/// thread the runtime's shutdown would wait for (a refresh timing out against an hour-long
/// latency ends in its timeout, not in an hour).
#[test]
fn a_call_given_up_on_does_not_hold_the_runtime_for_its_latency() {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    rt.block_on(async {
        let p = provider(dir.path(), json!({"latency_ms": 3_600_000}));
        let given_up = tokio::time::timeout(
            Duration::from_millis(50),
            p.create_server(&spec("slow"), &owner("server.slow")),
        )
        .await;
        assert!(given_up.is_err(), "the call answered within its latency");
    });
    drop(rt);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
}

#[tokio::test]
async fn fail_call_fails_exactly_the_nth_mutating_call() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({"fail_call": 3}));
    let a = p
        .create_server(&spec("a"), &owner("server.a"))
        .await
        .unwrap(); // call 1
    p.list_servers().await.unwrap(); // reads are not counted
    p.get_server_info(&a.id).await.unwrap();
    p.stop_server(&a.id).await.unwrap(); // call 2
    let e = assert_kind(
        p.create_server(&spec("b"), &owner("server.b")).await, // call 3
        ErrorKind::Failed,
    );
    assert_eq!(e.message, "injected failure (call 3)");
    p.create_server(&spec("c"), &owner("server.c"))
        .await
        .unwrap(); // call 4
    let names: Vec<_> = p
        .list_servers()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.hostname)
        .collect();
    assert_eq!(names, ["a", "c"], "the failed call changed nothing");
}

#[tokio::test]
async fn fail_servers_fails_create_update_and_delete_of_those_hostnames() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({"fail_servers": ["bad"]}));
    let e = assert_kind(
        p.create_server(&spec("bad"), &owner("server.bad")).await,
        ErrorKind::Failed,
    );
    assert!(
        e.message.contains("injected failure") && e.message.contains("bad"),
        "{e}"
    );
    assert!(World::open(dir.path()).unwrap().is_empty().unwrap());

    let good = p
        .create_server(&spec("good"), &owner("server.good"))
        .await
        .unwrap();
    p.stop_server(&good.id).await.unwrap();
    // Rename it out of band into the failing set: update and delete now fail.
    World::open(dir.path())
        .unwrap()
        .set_server_attribute(&good.id, "hostname", json!("bad"))
        .unwrap();
    let before = spec("bad");
    let mut after = before.clone();
    after.plan = "medium".into();
    assert_kind(
        p.update_server(&good.id, &ServerUpdate { before, after })
            .await,
        ErrorKind::Failed,
    );
    assert_kind(p.delete_server(&good.id).await, ErrorKind::Failed);
    assert!(p.get_server_info(&good.id).await.unwrap().is_some());
}

#[test]
fn environment_injects_failures_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let child = spawn_child(
        "env",
        dir.path(),
        &[
            ("PROV_SIM_FAIL_SERVERS", "env-bad, other"),
            ("PROV_SIM_LATENCY_MS", "30"),
        ],
    );
    wait_ok(child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_get_distinct_ids_and_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            // 200 servers over 16 tasks: 13 or 12 each.
            for i in (t..200).step_by(16) {
                let host = format!("srv-{i:03}");
                out.push(
                    p.create_server(&spec(&host), &owner(&format!("server.{host}")))
                        .await
                        .unwrap(),
                );
            }
            out
        }));
    }
    let mut servers = Vec::new();
    for t in tasks {
        servers.extend(t.await.unwrap());
    }
    assert_eq!(servers.len(), 200);
    let ids: HashSet<_> = servers.iter().map(|s| s.id.clone()).collect();
    let public: HashSet<_> = servers
        .iter()
        .map(|s| s.public_ip.clone().unwrap())
        .collect();
    let private: HashSet<_> = servers
        .iter()
        .map(|s| s.private_ip.clone().unwrap())
        .collect();
    assert_eq!((ids.len(), public.len(), private.len()), (200, 200, 200));
    assert!(public.iter().all(|ip| is_documentation_or_benchmark_ip(ip)));

    let servers_dir = dir.path().join(".prov/sim/servers");
    let files = std::fs::read_dir(&servers_dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json")
        })
        .count();
    assert_eq!(files, 200);
    assert!(leftover_temp_files(&servers_dir).is_empty());
    assert_eq!(
        World::open(dir.path()).unwrap().server_count().unwrap(),
        200
    );
    assert_eq!(p.list_servers().await.unwrap().len(), 200);
}

#[test]
fn separate_processes_share_one_world() {
    let dir = tempfile::tempdir().unwrap();
    let children: Vec<_> = (0..4)
        .map(|n| {
            spawn_child(
                "create",
                dir.path(),
                &[("PROV_SIM_TEST_PREFIX", &format!("p{n}"))],
            )
        })
        .collect();
    for c in children {
        wait_ok(c);
    }
    let w = World::open(dir.path()).unwrap();
    let servers = w.list_servers().unwrap();
    assert_eq!(servers.len(), 100);
    let ids: HashSet<_> = servers.iter().map(|s| &s.id).collect();
    let ips: HashSet<_> = servers.iter().map(|s| &s.public_ip).collect();
    assert_eq!((ids.len(), ips.len()), (100, 100));
    for n in 0..4 {
        let prefix = format!("p{n}-");
        assert_eq!(
            servers
                .iter()
                .filter(|s| s.hostname.starts_with(&prefix))
                .count(),
            25
        );
    }
}

/// Not a test of its own: the body of the child processes the tests above start. Without
/// `PROV_SIM_TEST_CHILD` it does nothing.
#[test]
fn child_process_entry() {
    let Ok(mode) = std::env::var(CHILD_MODE) else {
        return;
    };
    let dir = std::path::PathBuf::from(std::env::var(CHILD_DIR).unwrap());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        match mode.as_str() {
            "env" => {
                // Settings say nothing; the environment injects.
                let p = provider(&dir, json!({"fail_servers": ["cfg-bad"]}));
                let t = Instant::now();
                let e = p
                    .create_server(&spec("env-bad"), &owner("server.env-bad"))
                    .await;
                assert_kind(e, ErrorKind::Failed);
                assert!(
                    t.elapsed() >= Duration::from_millis(30),
                    "{:?}",
                    t.elapsed()
                );
                assert_kind(
                    p.create_server(&spec("cfg-bad"), &owner("server.cfg-bad"))
                        .await,
                    ErrorKind::Failed,
                );
                p.create_server(&spec("fine"), &owner("server.fine"))
                    .await
                    .unwrap();
                // An explicit setting wins over the environment's latency.
                let fast = provider(&dir, json!({"latency_ms": 0}));
                let t = Instant::now();
                fast.get_plans().await.unwrap();
                assert!(t.elapsed() < Duration::from_millis(30), "{:?}", t.elapsed());
            }
            "create" => {
                let prefix = std::env::var("PROV_SIM_TEST_PREFIX").unwrap();
                let p = provider(&dir, json!({}));
                let tasks: Vec<_> = (0..25)
                    .map(|i| {
                        let p = p.clone();
                        let host = format!("{prefix}-{i:02}");
                        tokio::spawn(async move {
                            p.create_server(&spec(&host), &owner(&format!("server.{host}")))
                                .await
                                .unwrap()
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
            }
            other => panic!("unknown child mode {other}"),
        }
    });
}

#[tokio::test]
async fn get_servers_info_answers_each_id_in_order_like_get_server_info() {
    let dir = tempfile::tempdir().unwrap();
    let p = provider(dir.path(), json!({}));
    assert!(p.read_batch() > 1, "sim reads servers in batches");
    let a = p
        .create_server(&spec("a"), &owner("server.a"))
        .await
        .unwrap();
    let b = p
        .create_server(&spec("b"), &owner("server.b"))
        .await
        .unwrap();
    let ids: Vec<String> = vec![
        b.id.clone(),
        "sim-000000000000".into(),
        a.id.clone(),
        "../x".into(),
    ];
    let got: Vec<_> = p
        .get_servers_info(&ids)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(got.len(), 4);
    assert_eq!(got[0], p.get_server_info(&b.id).await.unwrap());
    assert_eq!(got[1], None, "an unknown id is absent, not an error");
    assert_eq!(got[2], p.get_server_info(&a.id).await.unwrap());
    assert_eq!(got[3], None, "an id that cannot be a file name is absent");
    assert_eq!(got[2].as_ref().unwrap().hostname, "a");

    // A damaged server file fails its own answer, not the others'.
    std::fs::write(
        dir.path().join(format!(".prov/sim/servers/{}.json", a.id)),
        "{ not json",
    )
    .unwrap();
    let got = p.get_servers_info(&[a.id.clone(), b.id.clone()]).await;
    let e = got[0].as_ref().unwrap_err();
    assert_eq!(e.operation, "get-server-info");
    assert!(e.message.contains("invalid JSON"), "{e}");
    assert_eq!(got[1].as_ref().unwrap().as_ref().unwrap().hostname, "b");
}

#[tokio::test]
async fn batched_reads_come_in_pages_of_read_batch_each_one_latency() {
    let dir = tempfile::tempdir().unwrap();
    let fast = provider(dir.path(), json!({}));
    let mut ids = Vec::new();
    for i in 0..5 {
        let host = format!("p{i}");
        let s = fast
            .create_server(&spec(&host), &owner(&format!("server.{host}")))
            .await
            .unwrap();
        ids.push(s.id);
    }
    let paged = provider(dir.path(), json!({"latency_ms": 40, "read_batch": 2}));
    assert_eq!(paged.read_batch(), 2, "refresh asks for pages of this size");
    // Five ids in pages of two: three pages, one latency each, one after another.
    let t = Instant::now();
    let got = paged.get_servers_info(&ids).await;
    assert!(
        t.elapsed() >= Duration::from_millis(120),
        "three pages of 40 ms: {:?}",
        t.elapsed()
    );
    let hosts: Vec<String> = got
        .into_iter()
        .map(|r| r.unwrap().unwrap().hostname)
        .collect();
    assert_eq!(
        hosts,
        ["p0", "p1", "p2", "p3", "p4"],
        "in order, every page"
    );
    // `read_batch = 1` is a provider without batched reads: refresh asks per server.
    let single = provider(dir.path(), json!({"read_batch": 1}));
    assert_eq!(single.read_batch(), 1);
}
