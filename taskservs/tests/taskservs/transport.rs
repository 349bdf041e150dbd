//! The transports against real peers: local child processes, and the system OpenSSH client
//! against an sshd this test starts on 127.0.0.1 (upload, run with a timeout, exit codes and
//! stderr tails, ControlMaster reuse, the host-key policy), then a whole taskserv over SSH.

use super::fixture::{collector, request, sshd, BoxProvider};
use prov_engine::registry::Registry;
use prov_engine::traits::TransportSpec;
use prov_taskservs::transport::{self, ssh::Ssh, SshOptions, Transport, TransportError};
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn local_transport_uploads_under_its_root_and_runs_there() {
    let root = tempfile::tempdir().unwrap();
    let t = transport::local::Local::new(root.path().to_path_buf(), env(&[("FROM_PROVIDER", "p")]));
    t.upload("/etc/x/a.conf", b"one\n", 0o640).await.unwrap();
    assert_eq!(
        std::fs::read(root.path().join("etc/x/a.conf")).unwrap(),
        b"one\n"
    );
    let (sink, lines) = collector();
    let out = t
        .run(
            "pwd; echo \"$FROM_PROVIDER $MINE\"; cat etc/x/a.conf; echo oops >&2; exit 3",
            &env(&[("MINE", "it's mine")]),
            Duration::from_secs(10),
            Some(&sink),
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(3));
    let here = root.path().canonicalize().unwrap();
    assert_eq!(
        out.stdout,
        format!("{}\np it's mine\none\n", here.display())
    );
    assert_eq!(out.tail(5), "oops");
    assert_eq!(lines.lock().unwrap().len(), 4);
    let start = Instant::now();
    let e = t
        .run(
            "sleep 30",
            &BTreeMap::new(),
            Duration::from_millis(500),
            None,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout(_)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn ssh_transport_against_a_real_sshd() {
    let Some(d) = sshd("ssh_transport_against_a_real_sshd") else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let mut opts = SshOptions::for_workspace(ws.path());
    // A private control directory: the test's master is its own.
    opts.control_dir = d.dir.path().join("cm");
    let t = Ssh::new(d.access(), opts.clone());
    assert!(!t.master_running().await);

    // First contact: the host key is accepted (accept-new) into the workspace's known_hosts.
    let t0 = Instant::now();
    let out = t
        .run(
            "echo \"hello $WHO\"",
            &env(&[("WHO", "there")]),
            Duration::from_secs(20),
            None,
        )
        .await
        .unwrap();
    let first = t0.elapsed();
    assert_eq!(out.stdout, "hello there\n");
    assert!(opts.known_hosts.is_file());
    assert!(std::fs::read_to_string(&opts.known_hosts)
        .unwrap()
        .contains("ssh-ed25519"));

    // The ControlMaster is up and reused: the socket exists and later commands are faster.
    assert!(t.master_running().await);
    let sockets = std::fs::read_dir(&opts.control_dir).unwrap().count();
    assert_eq!(sockets, 1);
    let t1 = Instant::now();
    for _ in 0..3 {
        t.run("true", &BTreeMap::new(), Duration::from_secs(20), None)
            .await
            .unwrap();
    }
    let reused = t1.elapsed() / 3;
    println!("ssh: first command {first:?}, multiplexed {reused:?}");
    assert!(reused < first, "first {first:?}, reused {reused:?}");

    // Upload (atomic, parents created, mode kept).
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("sub/dir/f.conf");
    t.upload(&target.display().to_string(), b"uploaded\n", 0o600)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"uploaded\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Exit codes and stderr tails come back; a script cannot eat its own rest from stdin.
    let out = t
        .run(
            "read -r x || true; echo one >&2; echo two >&2; exit 42",
            &BTreeMap::new(),
            Duration::from_secs(20),
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.code, Some(42));
    assert_eq!(out.tail(2), "one\ntwo");

    // A timeout kills the remote command's ssh.
    let start = Instant::now();
    let e = t
        .run("sleep 30", &BTreeMap::new(), Duration::from_secs(1), None)
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Timeout(_)), "{e}");
    assert!(start.elapsed() < Duration::from_secs(10));

    // Strict policy with a known_hosts that lacks the key: refused as an authentication error.
    let mut strict = opts.clone();
    strict.host_key_policy = "yes".into();
    strict.known_hosts = d.dir.path().join("empty_known_hosts");
    strict.control_dir = d.dir.path().join("cm2");
    let e = Ssh::new(d.access(), strict)
        .run("true", &BTreeMap::new(), Duration::from_secs(20), None)
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Auth(_)), "{e}");
    assert!(
        e.to_string().contains("Host key verification failed"),
        "{e}"
    );

    // A key the server does not know: an authentication error.
    let mut wrong = d.access();
    wrong.key_path = Some(d.dir.path().join("host_key").display().to_string());
    let mut o = opts.clone();
    o.control_dir = d.dir.path().join("cm3");
    let e = Ssh::new(wrong, o)
        .run("true", &BTreeMap::new(), Duration::from_secs(20), None)
        .await
        .unwrap_err();
    assert!(matches!(e, TransportError::Auth(_)), "{e}");
    t.close().await;
    assert!(!t.master_running().await);
}

#[tokio::test]
async fn a_taskserv_over_ssh() {
    let Some(d) = sshd("a_taskserv_over_ssh") else {
        return;
    };
    let ws = tempfile::tempdir().unwrap();
    let ext = tempfile::tempdir().unwrap();
    // Over SSH, PROV_ROOT is empty: the extension keeps its files under a directory of the test.
    let base = tempfile::tempdir().unwrap();
    let b = base.path().display().to_string();
    let dd = ext.path().join("taskservs/hello");
    super::fixture::write(&dd, "manifest.toml", &format!("[extension]\nname = \"hello\"\ntype = \"taskserv\"\nversion = \"1.0.0\"\n\n[[taskserv.files]]\ntemplate = \"hello.txt.j2\"\npath = \"{b}/hello.txt\"\n\n[taskserv.health]\ncommand = \"cat {b}/hello.txt\"\nexpect = \"hello {{{{ settings.name }}}}\"\nretries = 0\n"));
    super::fixture::write(
        &dd,
        "templates/hello.txt.j2",
        "hello {{ settings.name }} from {{ server.hostname }}\n",
    );
    super::fixture::write(
        &dd,
        "scripts/install.sh",
        &format!("echo \"root=[$PROV_ROOT]\"\necho installed > {b}/state\n"),
    );
    super::fixture::write(
        &dd,
        "scripts/configure.sh",
        &format!("echo configured >> {b}/state\n"),
    );
    super::fixture::write(
        &dd,
        "scripts/status.sh",
        &format!("[ -f {b}/state ] || exit 4\necho version=1.0.0\nexit 0\n"),
    );
    super::fixture::write(
        &dd,
        "scripts/uninstall.sh",
        &format!("rm -f {b}/state {b}/hello.txt\n"),
    );
    let mut reg = Registry::new();
    prov_taskservs::register_extensions(
        &mut reg,
        &[prov_engine::extension::Root::tree(
            ext.path().to_path_buf(),
            prov_engine::extension::Origin::Workspace,
        )],
    )
    .unwrap();
    let t = reg
        .bind(ws.path().to_path_buf(), &Default::default())
        .taskserv("hello")
        .unwrap();
    let p = BoxProvider::new(TransportSpec::ssh(d.access()));
    let (sink, lines) = collector();
    let mut req = request(&p, "hello", None, json!({"name": "ssh"}));
    req.output = Some(sink);
    let r = t.install(&req).await.unwrap();
    assert_eq!(r.version.as_deref(), Some("1.0.0"));
    assert_eq!(
        std::fs::read_to_string(base.path().join("hello.txt")).unwrap(),
        "hello ssh from box-1\n"
    );
    assert!(lines.lock().unwrap().contains(&"root=[]".to_string()));
    let req = request(&p, "hello", None, json!({"name": "again"}));
    t.configure(&req).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(base.path().join("state")).unwrap(),
        "installed\nconfigured\n"
    );
    assert!(t.status(&req).await.unwrap().running);
    t.uninstall(&req).await.unwrap();
    assert!(!t.status(&req).await.unwrap().installed);
    // The workspace's known_hosts now knows the server.
    assert!(ws.path().join(".prov/ssh/known_hosts").is_file());
}
