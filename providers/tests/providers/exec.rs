//! Integration tests of exec providers against a real executable: the Python provider under
//! tests/fixtures/exec-provider (every operation, concurrency), and its misbehaviours — a
//! malformed response, a non-zero exit, a timeout (process group killed) — each a clear error.

use prov_engine::extension::search_path;
use prov_engine::registry::{Bound, Registry};
use prov_engine::traits::{
    ErrorKind, ExtError, FirewallRule, Ownership, Provider, ServerSpec, ServerStatus, ServerUpdate,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/exec-provider")
}

/// Copies the fixture into `root/providers/<dir_name>/`, rewriting the manifest with `edit`.
fn install(root: &Path, dir_name: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = root.join("providers").join(dir_name);
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("provider.py");
    std::fs::copy(fixture().join("provider.py"), &script).unwrap();
    let manifest = std::fs::read_to_string(fixture().join("manifest.toml")).unwrap();
    std::fs::write(dir.join("manifest.toml"), edit(manifest)).unwrap();
    dir
}

struct Ws {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Ws {
    fn new() -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ws");
        std::fs::create_dir(&dir).unwrap();
        install(&dir.join("extensions"), "pyprov", |m| m);
        Ws { _tmp: tmp, dir }
    }
    fn registry(&self) -> Result<Registry, String> {
        let mut reg = Registry::new();
        prov_providers::register_all(&mut reg);
        prov_providers::register_extensions(&mut reg, &search_path(&self.dir))
            .map_err(|e| e.to_string())?;
        Ok(reg)
    }
    fn bound(&self, settings: Value) -> Bound {
        let mut m = serde_json::Map::new();
        m.insert("pyprov".into(), settings);
        self.registry().unwrap().bind(self.dir.clone(), &m)
    }
    fn provider(&self, settings: Value) -> Arc<dyn Provider> {
        self.bound(settings).provider("pyprov").unwrap()
    }
    fn servers_file(&self) -> Value {
        let text = std::fs::read_to_string(self.dir.join(".prov/pyprov/servers.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

fn spec(hostname: &str) -> ServerSpec {
    ServerSpec {
        hostname: hostname.into(),
        plan: "small".into(),
        zone: "py-a".into(),
        os: "debian-12".into(),
        ssh_keys: vec!["ssh-ed25519 AAAA test".into()],
        tags: BTreeMap::from([("role".to_string(), "web".to_string())]),
        firewall_rules: vec![],
        storage: Value::Null,
        network: Value::Null,
    }
}

fn owner(address: &str) -> Ownership {
    Ownership {
        workspace: "ws".into(),
        address: address.into(),
    }
}

fn assert_names(e: &ExtError, op: &str, target: Option<&str>, parts: &[&str]) {
    let text = e.to_string();
    assert_eq!(e.implementation, "pyprov", "{text}");
    assert_eq!(e.operation, op, "{text}");
    assert_eq!(e.target.as_deref(), target, "{text}");
    for p in parts {
        assert!(text.contains(p), "expected {p:?} in: {text}");
    }
}

#[tokio::test]
async fn every_operation_through_the_python_provider() {
    let ws = Ws::new();
    let p = ws.provider(json!({"parallelism": 3}));
    assert_eq!(p.parallelism(), Some(3));
    assert_eq!(p.replace_on_change(), ["zone", "os", "hostname"]);

    let info = p.info().await.unwrap();
    assert_eq!(info.name, "pyprov");
    assert_eq!(info.supported_operations.len(), 16);
    assert!(p.validate_config(&json!({})).await.unwrap().valid());
    let v = p
        .validate_config(&json!({"fail_hosts": "web"}))
        .await
        .unwrap();
    assert_eq!(v.errors, ["fail_hosts must be a list of hostnames"]);
    assert!(p.test_connection().await.unwrap().success);
    assert_eq!(p.get_plans().await.unwrap().len(), 2);
    assert_eq!(p.get_zones().await.unwrap()[1].name, "py-b");
    assert_eq!(p.get_pricing().await.unwrap()[1].monthly, 28.8);
    crate::assert_prices_every_plan(&*p).await;

    let s = p
        .create_server(&spec("web-01"), &owner("server.web-01"))
        .await
        .unwrap();
    assert_eq!(s.status, ServerStatus::Running);
    assert_eq!(s.tags["prov:workspace"], "ws");
    assert_eq!(s.tags["prov:address"], "server.web-01");
    assert_eq!(s.tags["role"], "web");
    // The Python side really keeps it, in the workspace.
    assert_eq!(ws.servers_file()["servers"][&s.id]["hostname"], "web-01");

    assert_eq!(p.get_server_info(&s.id).await.unwrap().unwrap(), s);
    assert_eq!(p.list_servers().await.unwrap(), vec![s.clone()]);
    p.stop_server(&s.id).await.unwrap();
    let got = p.get_server_info(&s.id).await.unwrap().unwrap();
    assert_eq!(got.status, ServerStatus::Stopped);
    p.start_server(&s.id).await.unwrap();
    p.reboot_server(&s.id).await.unwrap();
    let ssh = p.get_ssh_access(&s.id).await.unwrap();
    assert_eq!(
        (ssh.host.as_str(), ssh.port),
        (s.public_ip.as_deref().unwrap(), 22)
    );

    let rules = vec![FirewallRule {
        direction: "ingress".into(),
        protocol: "tcp".into(),
        port: Some("22".into()),
        source: Some("10.0.0.0/8".into()),
        destination: None,
        action: "allow".into(),
    }];
    p.configure_firewall(&s.id, &rules).await.unwrap();
    let got = p.get_server_info(&s.id).await.unwrap().unwrap();
    assert_eq!(got.firewall_rules, rules);

    let mut after = spec("web-01");
    after.plan = "large".into();
    after.tags = BTreeMap::from([("role".to_string(), "db".to_string())]);
    let u = p
        .update_server(
            &s.id,
            &ServerUpdate {
                before: spec("web-01"),
                after,
            },
        )
        .await
        .unwrap();
    assert_eq!(u.plan, "large");
    assert_eq!(u.tags["role"], "db");
    assert_eq!(u.tags["prov:address"], "server.web-01", "ownership kept");

    // Errors the provider answers with keep their kind.
    let e = p
        .create_server(
            &ServerSpec {
                plan: "huge".into(),
                ..spec("x")
            },
            &owner("server.x"),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert_names(&e, "create-server", Some("x"), &["unknown plan 'huge'"]);

    p.delete_server(&s.id).await.unwrap();
    assert_eq!(p.get_server_info(&s.id).await.unwrap(), None);
    let e = p.delete_server(&s.id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(p.list_servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn parallel_creates_lose_nothing() {
    let ws = Ws::new();
    let p = ws.provider(json!({}));
    let mut tasks = vec![];
    for i in 0..8 {
        let p = p.clone();
        tasks.push(tokio::spawn(async move {
            let h = format!("n{i}");
            p.create_server(&spec(&h), &owner(&format!("server.{h}")))
                .await
                .unwrap()
        }));
    }
    let mut ids = vec![];
    for t in tasks {
        ids.push(t.await.unwrap().id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8);
    assert_eq!(p.list_servers().await.unwrap().len(), 8);
}

#[tokio::test]
async fn malformed_response_is_a_clear_error() {
    let ws = Ws::new();
    let p =
        ws.provider(json!({"faults": {"get-server-info": "malformed", "get-plans": "badshape"}}));
    let e = p.get_server_info("py-0042").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_names(
        &e,
        "get-server-info",
        Some("py-0042"),
        &[
            "malformed response",
            "provider.py",
            "this is not json {",
            "stderr: pyprov: about to answer badly",
        ],
    );
    let e = p.get_plans().await.unwrap_err();
    assert_names(&e, "get-plans", None, &["malformed result", "get-plans"]);
}

#[tokio::test]
async fn non_zero_exit_names_the_code_and_the_last_stderr_lines() {
    let ws = Ws::new();
    let p = ws.provider(json!({
        "faults": {"create-server": "exit"},
        "auth": {"method": "basic", "username": "u", "password": "pa55word-xyz"},
    }));
    let e = p
        .create_server(&spec("db-01"), &owner("server.db-01"))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_names(
        &e,
        "create-server",
        Some("db-01"),
        &[
            "exit code 3",
            "pyprov: step 1 ok | pyprov: cannot reach the backend: connection refused",
        ],
    );
    // The provider printed its settings to stderr; the password is blanked out.
    assert!(!e.to_string().contains("pa55word-xyz"), "{e}");
    assert!(e.to_string().contains("<redacted>"), "{e}");
    // Refused by the provider itself: its message and kind.
    let p = ws.provider(json!({"fail_hosts": ["db-02"]}));
    let e = p
        .create_server(&spec("db-02"), &owner("server.db-02"))
        .await
        .unwrap_err();
    assert_names(
        &e,
        "create-server",
        Some("db-02"),
        &["refusing to create db-02"],
    );
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let ws = Ws::new();
    let p = ws.provider(json!({"timeout_secs": 1.5, "faults": {"stop-server": "hang"}}));
    let start = Instant::now();
    let e = p.stop_server("py-0007").await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(e.kind, ErrorKind::Timeout);
    assert_names(
        &e,
        "stop-server",
        Some("py-0007"),
        &[
            "no answer within 1.5s",
            "process group was killed",
            "pyprov: waiting forever",
        ],
    );
    assert!(took < Duration::from_secs(6), "took {took:?}");
    // The provider's own child (sleep 300) died with it.
    let pid: i32 = std::fs::read_to_string(ws.dir.join("hang-child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for init to reap it.
        let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
        if stat.is_empty() || state == Some('Z') {
            break;
        }
        assert!(Instant::now() < deadline, "child {pid} survived: {stat}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn registration_errors_name_the_directory() {
    // A name that is a built-in provider.
    let ws = Ws::new();
    let dir = install(&ws.dir.join("extensions"), "mysim", |m| {
        m.replace("name = \"pyprov\"", "name = \"sim\"")
    });
    let e = ws.registry().err().unwrap();
    assert!(
        e.contains(&dir.join("manifest.toml").display().to_string()),
        "{e}"
    );
    assert!(e.contains("\"sim\" is already a built-in provider"), "{e}");

    // A missing [exec] section, a command that is not executable, an unknown key.
    for (edit, expect) in [
        (
            Box::new(|m: String| m[..m.find("[exec]").unwrap()].to_string())
                as Box<dyn Fn(String) -> String>,
            "missing the [exec] section",
        ),
        (
            Box::new(|m: String| m.replace("./provider.py", "./nope.py")),
            "is not an executable file",
        ),
        (
            Box::new(|m: String| m.replace("timeout_secs = 20", "timeout = 20")),
            "unknown field `timeout`",
        ),
    ] {
        let ws = Ws::new();
        let dir = install(&ws.dir.join("extensions"), "pyprov", edit);
        let e = ws.registry().err().unwrap();
        assert!(
            e.contains(&dir.join("manifest.toml").display().to_string()),
            "{e}"
        );
        assert!(e.contains(expect), "{expect}: {e}");
    }

    // Bad prov-side settings fail when the provider is built, naming the key.
    let ws = Ws::new();
    let e = ws
        .bound(json!({"parallelism": 0}))
        .provider("pyprov")
        .err()
        .unwrap();
    assert!(
        e.to_string().contains("providers.pyprov.parallelism"),
        "{e}"
    );
}

#[tokio::test]
async fn operations_not_declared_in_info_are_unsupported_without_running() {
    let ws = Ws::new();
    // A provider whose info lists only a few operations.
    let dir = ws.dir.join("extensions/providers/pyprov");
    let script = std::fs::read_to_string(dir.join("provider.py")).unwrap();
    std::fs::write(
        dir.join("provider.py"),
        script.replace(
            "\"supported_operations\": OPERATIONS,",
            "\"supported_operations\": [\"info\", \"get-zones\"],",
        ),
    )
    .unwrap();
    let p = ws.provider(json!({}));
    assert_eq!(p.get_zones().await.unwrap().len(), 2);
    let e = p.get_plans().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Unsupported);
    assert_names(&e, "get-plans", None, &["its info lists: info, get-zones"]);
    // validate-config is optional: no errors when not declared.
    assert!(p.validate_config(&json!({})).await.unwrap().valid());
}

/// prov's own keys of an exec provider's settings are checked by their Nickel schema
/// (`providers/src/exec/settings.ncl`): every problem at once, each naming its key; valid ones
/// are read (and the program's own keys are left to the program).
#[tokio::test]
async fn own_settings_are_checked_all_at_once() {
    let ws = Ws::new();
    let e = match ws
        .bound(json!({"parallelism": 0, "timeout_secs": "slow", "faults": {}}))
        .provider("pyprov")
    {
        Ok(_) => panic!("parallelism 0 and timeout_secs \"slow\" were accepted"),
        Err(e) => e,
    };
    assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
    let msg = e.to_string();
    assert!(msg.contains("providers.pyprov.parallelism"), "{msg}");
    assert!(msg.contains("providers.pyprov.timeout_secs"), "{msg}");
    let p = ws.provider(json!({"parallelism": 3, "timeout_secs": 2.5}));
    assert_eq!(p.parallelism(), Some(3));
}
