//! Extension-directory taskservs over the local transport: loading (workspace over the built-in
//! catalog), settings schemas, template rendering, scripts and their contract, health gates,
//! versions, and the errors for bad input. The scripts really run (bash, real processes).

use super::fixture::{collector, request, write, BoxProvider};
use prov_engine::extension::{Origin, Root};
use prov_engine::registry::Registry;
use prov_engine::traits::{ErrorKind, TaskServ, TaskservRequest};
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Writes the `demo` extension (a `sleep` daemon with a pid file) under `root/taskservs/demo`.
fn demo(root: &Path, timeout: u64) {
    let d = root.join("taskservs/demo");
    write(
        &d,
        "manifest.toml",
        &format!(
            r#"[extension]
name = "demo"
type = "taskserv"
version = "0.1.0"
description = "a test daemon"

[taskserv]
timeout = {timeout}

[[taskserv.files]]
template = "demo.conf.j2"
path = "/etc/prov/demo/demo.conf"
mode = "0600"

[taskserv.health]
command = "prov_pid_alive \"$PID\" && cat \"$PROV_CONF_DIR/demo.conf\""
expect = "greeting={{{{ settings.greeting }}}}"
timeout = 5
retries = 3
interval = 0.2

[taskserv.outputs]
endpoint = "{{{{ server.address }}}}:{{{{ settings.port }}}}"
"#
        ),
    );
    write(
        &d,
        "schemas/settings.ncl",
        "{\n  greeting | String | default = \"hello\",\n  port | std.number.Nat | default = 8080,\n  fail_install | Bool | default = false,\n  install_sleep | std.number.Nat | default = 0,\n}\n",
    );
    write(
        &d,
        "schemas/version.ncl",
        "{ source = { type = \"list\", versions = [\"1.0.0\", \"1.10.0\", \"1.2.0\"] }, install = { binary_name = \"sleep\" } }\n",
    );
    write(
        &d,
        "templates/demo.conf.j2",
        "# {{ taskserv.address }} on {{ server.hostname }} ({{ server.address }})\ngreeting={{ settings.greeting }}\nport={{ settings.port }}\nzone={{ server.zone }}\n",
    );
    write(
        &d,
        "scripts/lib.sh",
        "PID=\"$PROV_STATE_DIR/demo.pid\"\ndemo_start() {\n  mkdir -p \"$PROV_STATE_DIR\"\n  prov_stop_pid \"$PID\"\n  nohup sleep 1000 >/dev/null 2>&1 </dev/null &\n  echo $! > \"$PID\"\n  echo \"$PROV_OPERATION\" >> \"$PROV_STATE_DIR/ops\"\n}\n",
    );
    write(
        &d,
        "scripts/install.sh",
        "echo \"installing $PROV_TASKSERV on $PROV_SERVER\"\nif [ \"$PROV_SETTING_FAIL_INSTALL\" = true ]; then\n  echo 'about to fail' >&2\n  echo 'disk full: cannot write /nowhere' >&2\n  exit 7\nfi\nsleep \"$PROV_SETTING_INSTALL_SLEEP\"\nmkdir -p \"$PROV_STATE_DIR\"\necho \"${PROV_VERSION:-1.2.0}\" > \"$PROV_STATE_DIR/version\"\ndemo_start\necho 'installed'\n",
    );
    write(&d, "scripts/configure.sh", "demo_start\n");
    write(&d, "scripts/restart.sh", "demo_start\n");
    write(
        &d,
        "scripts/upgrade.sh",
        "echo \"$PROV_VERSION\" > \"$PROV_STATE_DIR/version\"\ndemo_start\n",
    );
    write(
        &d,
        "scripts/status.sh",
        "[ -f \"$PROV_CONF_DIR/demo.conf\" ] || exit 4\necho \"version=$(cat \"$PROV_STATE_DIR/version\")\"\nprov_pid_alive \"$PID\" && exit 0\nexit 3\n",
    );
    write(
        &d,
        "scripts/version.sh",
        "cat \"$PROV_STATE_DIR/version\" 2>/dev/null || true\n",
    );
    write(
        &d,
        "scripts/uninstall.sh",
        "prov_stop_pid \"$PID\"\nrm -rf \"$PROV_CONF_DIR\" \"$PROV_STATE_DIR\"\n",
    );
}

/// The taskserv `name` as the registry builds it for a workspace in `ws`.
fn load(ws: &Path, roots: &[std::path::PathBuf], name: &str) -> Arc<dyn TaskServ> {
    let mut reg = Registry::new();
    prov_taskservs::register_extensions(&mut reg, &trees(roots)).expect("extensions load");
    let bound = reg.bind(ws.to_path_buf(), &Default::default());
    bound.taskserv(name).expect("registered")
}

/// Search-path entries for extension trees (as `PROV_EXTENSIONS_PATH` entries are).
fn trees(dirs: &[std::path::PathBuf]) -> Vec<Root> {
    dirs.iter()
        .map(|d| Root::tree(d.clone(), Origin::Workspace))
        .collect()
}

fn pid_of(server_root: &Path) -> i32 {
    std::fs::read_to_string(server_root.join("var/lib/prov/demo/demo.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn alive(pid: i32) -> bool {
    std::process::Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn catalog_is_built_in_and_the_workspace_overrides_it_by_name() {
    let ws = tempfile::tempdir().unwrap();
    let dirs = vec![ws.path().join("extensions")];
    let roots = trees(&dirs);
    let mut reg = Registry::new();
    prov_taskservs::register_all(&mut reg);
    prov_taskservs::register_extensions(&mut reg, &roots).unwrap();
    for n in [
        "containerd",
        "etcd",
        "kubernetes",
        "cilium",
        "coredns",
        "redis",
        "postgres",
        "sim",
    ] {
        assert!(reg.has_taskserv(n), "{n} is registered");
    }
    assert_eq!(
        reg.taskserv_requires("kubernetes"),
        ["containerd"],
        "kubernetes needs containerd (its manifest)"
    );
    let listed = prov_taskservs::available(&roots).unwrap();
    assert!(listed
        .iter()
        .all(|a| a.source == "built-in" && !a.version.is_empty()));

    // A workspace extension of the same name wins over the catalog.
    write(
        &dirs[0],
        "taskservs/redis/manifest.toml",
        "[extension]\nname = \"redis\"\ntype = \"taskserv\"\nversion = \"9.9.9\"\n",
    );
    let listed = prov_taskservs::available(&roots).unwrap();
    let redis = listed.iter().find(|a| a.name == "redis").unwrap();
    assert_eq!(redis.version, "9.9.9");
    assert!(
        redis.source.contains("extensions/taskservs/redis"),
        "{}",
        redis.source
    );
    assert_eq!(
        listed.iter().find(|a| a.name == "etcd").unwrap().source,
        "built-in"
    );

    // An unknown taskserv names every place searched.
    let mut reg = Registry::new();
    prov_taskservs::register_extensions(&mut reg, &roots).unwrap();
    let bound = reg.bind(ws.path().to_path_buf(), &Default::default());
    let e = bound.taskserv("nginx").err().unwrap().to_string();
    assert!(e.contains("unknown taskserv \"nginx\""), "{e}");
    assert!(
        e.contains(&format!("{}", dirs[0].join("taskservs").display())),
        "{e}"
    );
    assert!(e.contains("the built-in catalog"), "{e}");
}

#[tokio::test]
async fn every_catalog_taskserv_validates_with_default_settings() {
    let ws = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let p = BoxProvider::local(server.path());
    for n in prov_taskservs::catalog::names() {
        let t = load(ws.path(), &[], n);
        let v = t.validate(&request(&p, n, None, json!({}))).await.unwrap();
        assert!(v.errors.is_empty(), "{n}: {:?}", v.errors);
    }
    // And a mistyped setting of a catalog schema is caught, naming the schema file.
    let t = load(ws.path(), &[], "redis");
    let v = t
        .validate(&request(&p, "redis", None, json!({"port": "six"})))
        .await
        .unwrap();
    assert!(
        v.errors
            .iter()
            .any(|e| e.contains("redis/schemas/settings.ncl")),
        "{:?}",
        v.errors
    );
}

#[tokio::test]
async fn lifecycle_over_the_local_transport() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let p = BoxProvider::local(server.path());
    let (sink, lines) = collector();
    let mut req = request(&p, "demo", None, json!({"greeting": "100% hello"}));
    req.output = Some(sink);

    let r = t.install(&req).await.unwrap();
    assert_eq!(r.version.as_deref(), Some("1.2.0"));
    assert_eq!(r.status, "running");
    let conf_path = server.path().join("etc/prov/demo/demo.conf");
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    assert_eq!(
        conf,
        "# taskserv.box-1.demo on box-1 (127.0.0.1)\ngreeting=100% hello\nport=8080\nzone=here\n"
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&conf_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let hash1 = r.outputs["files_hash"].as_str().unwrap().to_string();
    assert_eq!(hash1.len(), 64);
    assert_eq!(r.outputs["endpoint"], "127.0.0.1:8080");
    assert_eq!(r.outputs["files"], json!(["/etc/prov/demo/demo.conf"]));
    let seen = lines.lock().unwrap().clone();
    assert!(
        seen.contains(&"installing demo on box-1".to_string())
            && seen.contains(&"installed".to_string())
            && seen.contains(&"health check passed".to_string()),
        "{seen:?}"
    );
    let pid = pid_of(server.path());
    assert!(alive(pid));

    let s = t.status(&req).await.unwrap();
    assert!(s.installed && s.running, "{s:?}");
    assert_eq!(s.healthy, Some(true));
    assert_eq!(s.version.as_deref(), Some("1.2.0"));

    // Installing again is idempotent (same files, the daemon replaced).
    let again = t.install(&req).await.unwrap();
    assert_eq!(again.outputs["files_hash"], hash1);

    // New settings: configure renders, uploads and restarts; the hash follows.
    let mut req2 = request(&p, "demo", None, json!({"greeting": "bonjour"}));
    req2.output = None;
    t.configure(&req2).await.unwrap();
    assert!(std::fs::read_to_string(&conf_path)
        .unwrap()
        .contains("greeting=bonjour\n"));
    let out = t.configured_outputs(&req2).await.unwrap().unwrap();
    assert_ne!(out["files_hash"].as_str().unwrap(), hash1);
    let ops = std::fs::read_to_string(server.path().join("var/lib/prov/demo/ops")).unwrap();
    assert_eq!(ops, "install\ninstall\nconfigure\n");

    t.restart(&req2).await.unwrap();
    let up = t.upgrade(&req2, "1.10.0").await.unwrap();
    assert_eq!(up.version.as_deref(), Some("1.10.0"));
    assert_eq!(
        t.get_current_version(&req2).await.unwrap().as_deref(),
        Some("1.10.0")
    );
    assert_eq!(
        t.get_available_versions(&req2).await.unwrap(),
        ["1.0.0", "1.2.0", "1.10.0"],
        "numeric order"
    );
    let u = t.check_updates(&req2).await.unwrap();
    assert_eq!(
        (
            u.current.as_deref(),
            u.latest.as_deref(),
            u.update_available
        ),
        (Some("1.10.0"), Some("1.10.0"), false)
    );

    // Stopped out of band: installed, not running.
    let pid = pid_of(server.path());
    std::process::Command::new("kill")
        .arg(pid.to_string())
        .status()
        .unwrap();
    let start = Instant::now();
    while alive(pid) && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = t.status(&req2).await.unwrap();
    assert!(s.installed && !s.running, "{s:?}");
    assert_eq!(s.healthy, None);

    t.uninstall(&req2).await.unwrap();
    let s = t.status(&req2).await.unwrap();
    assert!(!s.installed, "{s:?}");
    assert!(!server.path().join("etc/prov/demo").exists());
}

#[tokio::test]
async fn bad_settings_templates_and_versions_are_named() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");

    let v = t
        .validate(&request(&p, "demo", None, json!({"port": "eighty"})))
        .await
        .unwrap();
    assert_eq!(v.errors.len(), 1, "{:?}", v.errors);
    assert!(
        v.errors[0].contains("demo/schemas/settings.ncl"),
        "{}",
        v.errors[0]
    );
    assert!(
        v.errors[0].contains(":3:"),
        "the line of `port`: {}",
        v.errors[0]
    );

    let v = t
        .validate(&request(&p, "demo", None, json!({"greting": "typo"})))
        .await
        .unwrap();
    assert!(v.errors[0].contains("greting"), "{}", v.errors[0]);

    let v = t
        .validate(&request(&p, "demo", Some("9.9.9"), json!({})))
        .await
        .unwrap();
    assert!(
        v.errors[0].contains("version \"9.9.9\" is not offered") && v.errors[0].contains("1.10.0"),
        "{:?}",
        v.errors
    );
    let v = t
        .validate(&request(&p, "demo", Some("1.0.0"), json!({})))
        .await
        .unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);

    // The install refuses bad settings before any script runs.
    let e = t
        .install(&request(&p, "demo", None, json!({"port": -1})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(!server.path().join("var/lib/prov/demo").exists());

    // A template error names the template file and line.
    write(
        ext.path(),
        "taskservs/demo/templates/demo.conf.j2",
        "# header\ngreeting={{ settings.greeting }}\nmissing={{ settings.nope }}\n",
    );
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let v = t
        .validate(&request(&p, "demo", None, json!({})))
        .await
        .unwrap();
    assert!(
        v.errors[0].contains("templates/demo.conf.j2:3"),
        "{:?}",
        v.errors
    );
    let e = t
        .install(&request(&p, "demo", None, json!({})))
        .await
        .unwrap_err();
    assert!(e.message.contains("templates/demo.conf.j2:3"), "{e}");
    write(
        ext.path(),
        "taskservs/demo/templates/demo.conf.j2",
        "{% if %}\n",
    );
    let e = t
        .install(&request(&p, "demo", None, json!({})))
        .await
        .unwrap_err();
    assert!(
        e.message.contains("templates/demo.conf.j2:1: syntax error"),
        "{e}"
    );
}

#[tokio::test]
async fn a_failing_script_reports_its_exit_code_and_stderr_tail() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let e = t
        .install(&request(&p, "demo", None, json!({"fail_install": true})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert_eq!(e.operation, "install");
    assert_eq!(e.target.as_deref(), Some("taskserv.box-1.demo"));
    assert!(
        e.message
            .contains("scripts/install.sh failed with exit code 7"),
        "{e}"
    );
    assert!(
        e.message
            .contains("about to fail\ndisk full: cannot write /nowhere"),
        "{e}"
    );
}

#[tokio::test]
async fn a_script_past_its_timeout_is_killed() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 1);
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let start = Instant::now();
    let e = t
        .install(&request(&p, "demo", None, json!({"install_sleep": 30})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.message.contains("timed out after 1s"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn health_gates_fail_the_operation() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let mut req = request(&p, "demo", None, json!({}));
    req.health_check = Some(
        json!({"command": "echo nope", "expect": "PONG", "retries": 1, "interval": 0.1, "timeout": 2}),
    );
    let e = t.install(&req).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Failed);
    assert!(
        e.message.contains("health check failed after 2 attempt(s)")
            && e.message.contains("printed \"nope\", expected \"PONG\""),
        "{e}"
    );
    let _ = t.uninstall(&req).await;
}

/// Serves `status` and `body` to every HTTP request on a fresh port (a real socket).
async fn http_server(status: &'static str, body: &'static str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    format!("HTTP/1.0 {status}\r\nContent-Type: application/json\r\n\r\n{body}")
                        .as_bytes(),
                )
                .await;
        }
    });
    port
}

#[tokio::test]
async fn http_endpoint_health_checks() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let ok = http_server("200 OK", "{\"health\":\"true\"}").await;
    let mut req: TaskservRequest = request(&p, "demo", None, json!({"port": ok}));
    req.health_check = Some(
        json!({"endpoint": "http://{{ server.address }}:{{ settings.port }}/health", "expect": "\"health\":\"true\"", "retries": 0}),
    );
    t.install(&req).await.unwrap();
    assert_eq!(t.status(&req).await.unwrap().healthy, Some(true));

    let bad = http_server("503 Service Unavailable", "starting").await;
    let mut req = request(&p, "demo", None, json!({"port": bad}));
    req.health_check = Some(
        json!({"endpoint": "http://127.0.0.1:{{ settings.port }}/health", "retries": 1, "interval": 0.1}),
    );
    let e = t.configure(&req).await.unwrap_err();
    assert!(
        e.message.contains(&format!(
            "endpoint http://127.0.0.1:{bad}/health answered HTTP 503"
        )),
        "{e}"
    );
    assert_eq!(t.status(&req).await.unwrap().healthy, Some(false));
    t.uninstall(&req).await.unwrap();
}

#[tokio::test]
async fn a_gone_server_is_not_found() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    demo(ext.path(), 30);
    let p = BoxProvider::local(ws.path());
    *p.spec.lock().unwrap() = None;
    let t = load(ws.path(), &[ext.path().to_path_buf()], "demo");
    let e = t
        .status(&request(&p, "demo", None, json!({})))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[test]
fn version_helpers() {
    use prov_taskservs::ext::{compare_versions, upstream_version};
    use std::cmp::Ordering;
    assert_eq!(compare_versions("1.10.0", "1.9.2"), Ordering::Greater);
    assert_eq!(compare_versions("v3.5.0", "3.5.0"), Ordering::Equal);
    assert_eq!(upstream_version("5:7.0.15-1~deb12u1"), "7.0.15");
    assert_eq!(upstream_version("3.4.23-1+b2"), "3.4.23");
    assert_eq!(upstream_version("1.6.20~ds1-1+b1"), "1.6.20");
}

#[tokio::test]
async fn plan_time_validation_accepts_attributes_known_after_create() {
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    let server = tempfile::tempdir().unwrap();
    let d = ext.path().join("taskservs/facts");
    write(
        &d,
        "manifest.toml",
        "[extension]\nname = \"facts\"\ntype = \"taskserv\"\nversion = \"1.0.0\"\n",
    );
    write(
        &d,
        "templates/f.conf.j2",
        "ip={{ server.private_ip }}\nid={{ server.id }}\nzone={{ server.zone }}\n",
    );
    // The scripts a taskserv needs (validate checks they exist).
    for op in ["install", "uninstall", "configure", "status"] {
        write(&d, &format!("scripts/{op}.sh"), "true\n");
    }
    let p = BoxProvider::local(server.path());
    let t = load(ws.path(), &[ext.path().to_path_buf()], "facts");
    // The server is not created yet: only its configuration is known.
    let mut req = request(&p, "facts", None, json!({}));
    req.server.facts = json!({"zone": "here", "plan": "small"});
    req.server.provider_id = String::new();
    let v = t.validate(&req).await.unwrap();
    assert!(v.errors.is_empty(), "{:?}", v.errors);
    // A fact that no provider computes is still an error.
    write(&d, "templates/f.conf.j2", "x={{ server.nonsense }}\n");
    let v = t.validate(&req).await.unwrap();
    assert!(
        v.errors[0].contains("templates/f.conf.j2:1"),
        "{:?}",
        v.errors
    );
}
