//! End-to-end tests of the `local` provider through the built `prov` binary: two netns servers
//! (one with a firewall) applied, reached with the system ssh, the firewall enforced, drift on a
//! killed sshd, destroy leaving nothing behind (root only); and the no-isolation mode, with its
//! refusal of firewall rules, as any user.

use super::*;
use serde_json::Value;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::io::AsRawFd;
use std::time::Duration;

/// Destroys whatever the workspace still has when the test ends, passed or failed.
struct Destroy<'a>(&'a Ws);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let _ = self.0.prov(&["destroy", "--auto-approve"]);
    }
}

pub(super) fn root_net(test: &str) -> bool {
    root_net_with(test, &[])
}

/// [`root_net`], and the `extra` tools too (apt-get for taskservs from the archive, …): the
/// prerequisites of every test that needs root networking, in one place.
pub(super) fn root_net_with(test: &str, extra: &[&str]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("root");
    }
    for tool in ["ip", "nft", "ssh", "ssh-keygen"].iter().chain(extra) {
        if Command::new(tool).arg("-V").output().is_err() {
            missing.push(*tool);
        }
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        missing.push("/usr/sbin/sshd");
    }
    if missing.is_empty() {
        return true;
    }
    if std::env::var("PROV_REQUIRE_ROOT_NET").as_deref() == Ok("1") {
        panic!(
            "{test}: PROV_REQUIRE_ROOT_NET=1 but missing: {}",
            missing.join(", ")
        );
    }
    println!("SKIPPED: {test}: needs {}", missing.join(", "));
    false
}

/// What apply computed for each server (`id`, addresses, `extra`), by address: the values of
/// `prov show --json` (Terraform's state shape: configured attributes and computed ones).
fn server_outputs(ws: &Ws) -> std::collections::BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(&ws.state()).unwrap();
    v["values"]["root_module"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "server")
        .map(|r| {
            (
                r["address"].as_str().unwrap().to_string(),
                r["values"].clone(),
            )
        })
        .collect()
}

fn ssh_true(key: &str, port: &str, user_host: &str) -> Output {
    Command::new("ssh")
        .args([
            "-i",
            key,
            "-p",
            port,
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "LogLevel=ERROR",
            user_host,
            "true",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn listen_in(netns: &str, ports: &[u16]) -> Vec<TcpListener> {
    let path = format!("/run/netns/{netns}");
    let ports = ports.to_vec();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).unwrap();
        // SAFETY: setns on a valid namespace descriptor; only this short-lived thread moves.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        ports
            .iter()
            .map(|p| TcpListener::bind(("0.0.0.0", *p)).unwrap())
            .collect()
    })
    .join()
    .unwrap()
}

fn connect(ip: &str, port: u16) -> Result<(), std::io::ErrorKind> {
    let addr: SocketAddr = format!("{ip}:{port}").parse().unwrap();
    TcpStream::connect_timeout(&addr, Duration::from_secs(3))
        .map(|_| ())
        .map_err(|e| e.kind())
}

fn link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .output()
        .unwrap()
        .status
        .success()
}

const NETNS_WS: &str = r#"
{
  providers = {
    local = {
      bridge = "pvte2e0",
      subnet = "10.213.80.0/24",
      defaults = { plan = "small", zone = "local" },
    },
  },
  servers = {
    web = {
      provider = "local",
      firewall_rules = [
        { direction = 'ingress, protocol = 'tcp, port = "8080", action = 'allow },
        { direction = 'ingress, protocol = 'tcp, port = "8081", action = 'deny },
      ],
    },
    db = { provider = "local", plan = "medium", tags = { peer = "${server.web.private_ip}" } },
  },
  outputs = { web_ip = "${server.web.private_ip}" },
}
"#;

#[test]
fn local_netns_apply_ssh_firewall_drift_destroy() {
    if !root_net("local_netns_apply_ssh_firewall_drift_destroy") {
        return;
    }
    let ws = Ws::new(NETNS_WS);
    let _destroy = Destroy(&ws);
    ws.prov(&["validate"]).ok().has("2 servers");
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 2 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    let out = server_outputs(&ws);
    let web = &out["server.web"];
    let db = &out["server.db"];
    let web_ip = web["private_ip"].as_str().unwrap();
    let db_ip = db["private_ip"].as_str().unwrap();
    assert!(web_ip.starts_with("10.213.80.") && db_ip.starts_with("10.213.80."));
    assert_ne!(web_ip, db_ip);
    ws.prov(&["output"])
        .ok()
        .has(&format!("web_ip = \"{web_ip}\""));

    // ssh with the access the provider hands out (get-ssh-access, recorded as extra.ssh): its
    // key, port 22, root, the sandbox's address.
    for o in [web, db] {
        let a = &o["extra"]["ssh"];
        assert_eq!(a["host"], o["private_ip"]);
        assert_eq!(
            (a["port"].as_u64(), a["user"].as_str()),
            (Some(22), Some("root"))
        );
        let r = ssh_true(
            a["key_path"].as_str().unwrap(),
            &a["port"].to_string(),
            &format!(
                "{}@{}",
                a["user"].as_str().unwrap(),
                a["host"].as_str().unwrap()
            ),
        );
        assert!(
            r.status.success(),
            "ssh {a}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    }

    // web's firewall: 8080 allowed, 8081 denied, 8082 not allowed by any rule; db has none.
    let web_ns = web["extra"]["netns"].as_str().unwrap();
    let db_ns = db["extra"]["netns"].as_str().unwrap();
    let l1 = listen_in(web_ns, &[8080, 8081, 8082]);
    let l2 = listen_in(db_ns, &[8081]);
    assert_eq!(connect(web_ip, 8080), Ok(()));
    assert_eq!(
        connect(web_ip, 8081),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(
        connect(web_ip, 8082),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    assert_eq!(connect(db_ip, 8081), Ok(()));
    drop((l1, l2));

    // sshd killed behind prov's back: drift reports the server stopped.
    ws.prov(&["drift"]).code(0);
    let pid = web["extra"]["sshd_pid"].as_i64().unwrap() as i32;
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(200));
    ws.prov(&["drift"])
        .code(2)
        .has("server.web: stopped outside prov");

    // The live verbs: start brings sshd back; `server ssh` logs in with get-ssh-access (run
    // here from its --print form, plus options that accept the new host key); stop ends it.
    ws.prov(&["server", "start", "web"]).ok();
    ws.prov(&["drift"]).code(0);
    let printed = ws.prov(&["server", "ssh", "web", "--print"]).ok().stdout;
    let words: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(words[0], "ssh", "{printed}");
    assert!(printed.contains(&format!("root@{web_ip}")), "{printed}");
    let out = Command::new("ssh")
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "LogLevel=ERROR"])
        .args(&words[1..])
        .args(["echo", "hello-from-web"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello-from-web"),
        "{printed}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    ws.prov(&["server", "stop", "db"]).ok();
    ws.prov(&["drift"])
        .code(2)
        .has("server.db: stopped outside prov");
    assert_eq!(
        connect(db_ip, 22),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    ws.prov(&["server", "reboot", "db"]).ok();
    assert_eq!(connect(db_ip, 22), Ok(()));
    ws.prov(&["drift"]).code(0);

    // Destroy leaves nothing: namespaces, veths, bridge, NAT table, directories, processes.
    ws.prov(&["destroy", "--auto-approve"]).ok();
    for o in [web, db] {
        let ns = o["extra"]["netns"].as_str().unwrap();
        assert!(!Path::new("/run/netns").join(ns).exists(), "{ns}");
        assert!(!link_exists(o["extra"]["veth"].as_str().unwrap()));
        assert!(!Path::new(o["extra"]["dir"].as_str().unwrap()).exists());
    }
    assert!(!link_exists("pvte2e0"));
    let nat = Command::new("nft")
        .args(["list", "table", "ip", "prov_local_pvte2e0"])
        .output()
        .unwrap();
    assert!(!nat.status.success(), "the NAT table is gone");
    // No process whose command line names the workspace (sshd's does) is left: read /proc
    // rather than rely on ps being installed.
    let ws_dir = ws.dir.canonicalize().unwrap().display().to_string();
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&ws_dir))
        .collect();
    assert!(
        left.is_empty(),
        "processes of the workspace's sandboxes are left: {left:?}"
    );
}

const NONE_WS: &str = r#"
{
  providers = { local = { isolation = "none" } },
  servers = {
    app = { provider = "local", plan = "small", zone = "local", tags = { role = "app" } },
  },
}
"#;

#[test]
fn local_without_isolation_apply_destroy() {
    let ws = Ws::new(NONE_WS);
    let _destroy = Destroy(&ws);
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 1 succeeded");
    let out = server_outputs(&ws);
    let app = &out["server.app"];
    assert_eq!(app["extra"]["isolation"], "none");
    assert_eq!(app["private_ip"], "127.0.0.1");
    let dir = Path::new(app["extra"]["dir"].as_str().unwrap()).to_path_buf();
    assert!(dir.starts_with(ws.dir.canonicalize().unwrap().join(".prov/local")));
    assert!(dir.join("root").is_dir());
    let a = &app["extra"]["ssh"];
    if Path::new("/usr/sbin/sshd").exists() {
        // sshd on 127.0.0.1:RANDOM as this user.
        assert_eq!(a["host"], "127.0.0.1");
        let r = ssh_true(
            a["key_path"].as_str().unwrap(),
            &a["port"].to_string(),
            &format!("{}@127.0.0.1", a["user"].as_str().unwrap()),
        );
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    } else {
        assert!(a.is_null(), "no sshd, no ssh access: {a}");
    }
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(!dir.exists());
    ws.prov(&["drift"]).code(0);
}

#[test]
fn local_firewall_rules_without_isolation_are_a_validate_error() {
    let ws = Ws::new(
        r#"
{
  providers = { local = { isolation = "none" } },
  servers = {
    web = {
      provider = "local", plan = "small", zone = "local",
      firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = "22", action = 'allow }],
    },
  },
}
"#,
    );
    let before = ws.state();
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        ws.prov(cmd)
            .code(1)
            .has("server.web")
            .has("firewall_rules: isolation \"none\" cannot enforce firewall rules")
            .has("root")
            .lacks("panicked");
    }
    assert_eq!(ws.state(), before);
    assert!(!ws.dir.join(".prov/local").exists());
}

#[test]
fn local_unknown_setting_is_an_error_naming_it() {
    let ws = Ws::new(
        r#"
{
  providers = { local = { isolaton = "none" } },
  servers = { web = { provider = "local", plan = "small", zone = "local" } },
}
"#,
    );
    ws.prov(&["validate"])
        .code(1)
        .has("providers.local.isolaton: unknown setting");
    ws.prov(&["plan"]).code(1).has("isolaton");
}

#[test]
fn local_example_applies_and_is_idempotent() {
    // As root the example uses namespaces on the default bridge; anyone else gets sandboxes
    // without isolation. Both must work.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("local");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/examples/local/main.ncl"),
        dir.join("main.ncl"),
    )
    .unwrap();
    let ws = Ws {
        _tmp: tmp,
        dir: dir.clone(),
    };
    let _destroy = Destroy(&ws);
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 2 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    ws.prov(&["output"]).ok().has("app_address = ");
    ws.prov(&["destroy", "--auto-approve"]).ok();
    let left = std::fs::read_dir(dir.join(".prov/local")).map_or(0, |d| d.count());
    assert_eq!(left, 0);
}

#[test]
fn local_concurrent_applies_share_the_bridge() {
    if !root_net("local_concurrent_applies_share_the_bridge") {
        return;
    }
    // Two prov processes at once, three servers each, one bridge: the host lock keeps the
    // addresses distinct across processes.
    let config = r#"
{
  providers = { local = { bridge = "pvte2e1", subnet = "10.213.112.0/24",
                          defaults = { plan = "small", zone = "local" } } },
  servers = { a = { provider = "local" }, b = { provider = "local" }, c = { provider = "local" } },
}
"#;
    let (w1, w2) = (Ws::new(config), Ws::new(config));
    let (_d1, _d2) = (Destroy(&w1), Destroy(&w2));
    let children: Vec<_> = [&w1, &w2]
        .iter()
        .map(|w| spawn(&w.dir, &["apply", "--auto-approve"], &[]))
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut ips: Vec<String> = [&w1, &w2]
        .iter()
        .flat_map(|w| server_outputs(w).into_values())
        .map(|o| o["private_ip"].as_str().unwrap().to_string())
        .collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 6, "{ips:?}");
    w1.prov(&["destroy", "--auto-approve"]).ok();
    assert!(
        link_exists("pvte2e1"),
        "the other workspace still uses the bridge"
    );
    w2.prov(&["destroy", "--auto-approve"]).ok();
    assert!(!link_exists("pvte2e1"));
}

/// Sandbox directories of a workspace (never the staging ones).
fn sandboxes(ws: &Ws) -> Vec<String> {
    std::fs::read_dir(ws.dir.join(".prov/local"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn local_sigkill_during_apply_and_destroy_leaves_nothing_unknown() {
    if !root_net("local_sigkill_during_apply_and_destroy_leaves_nothing_unknown") {
        return;
    }
    let ws = Ws::new(
        r#"
{
  providers = { local = { bridge = "pvte2e2", subnet = "10.213.128.0/24",
                          defaults = { plan = "small", zone = "local" } } },
  servers = { a = { provider = "local" }, b = { provider = "local" },
              c = { provider = "local" }, d = { provider = "local" } },
}
"#,
    );
    let _destroy = Destroy(&ws);
    let mut kills = 0;
    // Kill points as fractions of how long an uninterrupted apply and destroy of the four take on
    // this machine (measured after a first round, which also pays one-time setup such as the
    // bridge): a fixed delay kills nothing on a machine fast enough to finish first.
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["destroy", "--auto-approve"]).ok();
    let took = |verb: &str| {
        let t = std::time::Instant::now();
        ws.prov(&[verb, "--auto-approve"]).ok();
        t.elapsed()
    };
    let apply_took = took("apply");
    let destroy_took = took("destroy");
    println!("uninterrupted: apply {apply_took:?}, destroy {destroy_took:?}");
    let trials = [
        ("apply", 0.3),
        ("destroy", 0.3),
        ("apply", 0.5),
        ("destroy", 0.55),
        ("apply", 0.7),
        ("destroy", 0.75),
    ];
    for (trial, (verb, fraction)) in trials.into_iter().enumerate() {
        let whole = if verb == "apply" {
            apply_took
        } else {
            destroy_took
        };
        let delay_ms = (whole.as_secs_f64() * 1000.0 * fraction) as u64;
        // Start from nothing (to kill an apply) or from everything (to kill a destroy).
        let other = if verb == "apply" { "destroy" } else { "apply" };
        ws.prov(&[other, "--auto-approve"]).ok();
        let mut child = command(&ws.dir, &[verb, "--auto-approve"], &[])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let killed = child.try_wait().unwrap().is_none();
        if killed {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();

        // Every sandbox is in the state or in a pending operation: nothing prov does not know.
        // (A child the killed prov was starting holds a copy of its lock until it has exec'd.)
        let pull = ws.prov(&["state", "pull", "--lock-timeout", "10s"]).ok();
        let pulled: Value = serde_json::from_str(&pull.stdout).unwrap();
        let mut known: Vec<String> = pulled["resources"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["record"]["provider_id"].as_str().map(str::to_string))
            .collect();
        let pending: Vec<String> = pulled["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                p["address"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("server.")
                    .to_string()
            })
            .collect();
        for id in sandboxes(&ws) {
            let host = id.rsplit_once('-').unwrap().0.to_string();
            assert!(
                known.contains(&id) || pending.contains(&host),
                "trial {trial} ({verb} killed after {delay_ms} ms): sandbox {id} is unknown"
            );
        }
        known.clear();

        // The next apply converges; a create cut short is reported and replaced.
        ws.prov(&["apply", "--auto-approve"]).ok();
        let drift: Value = serde_json::from_str(&ws.prov(&["drift", "--json"]).stdout).unwrap();
        let broken: Vec<String> = drift["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["status"] == "stopped")
            .map(|i| i["address"].as_str().unwrap().to_string())
            .collect();
        println!(
            "trial {trial}: {verb} {} after {delay_ms} ms; left broken: {broken:?}",
            if killed { "killed" } else { "had finished" }
        );
        if !broken.is_empty() {
            let mut args = vec!["apply", "--auto-approve"];
            for b in &broken {
                args.extend(["--replace", b.as_str()]);
            }
            ws.prov(&args).ok();
        }
        ws.prov(&["drift"]).code(0);
        ws.prov(&["plan", "--detailed-exitcode"]).ok();
        assert_eq!(sandboxes(&ws).len(), 4, "trial {trial}");
    }
    assert!(
        kills >= 4,
        "most trials killed a running command ({kills} of 6)"
    );
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(sandboxes(&ws).is_empty());
    assert!(!link_exists("pvte2e2"));
    assert!(!Path::new("/run/prov-local/pvte2e2").exists());
}

#[test]
fn local_missing_host_tools_are_found_at_validate() {
    // No PATH entry has ssh-keygen (every sandbox needs it): refused before anything is made.
    let empty = tempfile::tempdir().unwrap();
    let path = empty.path().display().to_string();
    let ws = Ws::new(NONE_WS);
    let before = ws.state();
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        ws.prov_env(cmd, &[("PATH", &path)])
            .code(1)
            .has("server.app")
            .has("ssh-keygen is needed by providers.local (isolation none) but is not installed")
            .lacks("panicked");
    }
    assert_eq!(ws.state(), before);
    assert!(!ws.dir.join(".prov/local").exists());
    // A namespace sandbox needs sshd too (root only: others cannot ask for netns).
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        ws.write(
            r#"{ providers = { local = { isolation = "netns", sshd = "/nonexistent/sshd" } },
                 servers = { app = { provider = "local", plan = "small", zone = "local" } } }"#,
        );
        ws.prov(&["plan"])
            .code(1)
            .has("/nonexistent/sshd is needed by providers.local (isolation netns)");
        assert!(!ws.dir.join(".prov/local").exists());
    }
}

#[test]
fn local_address_changed_outside_prov_updates_what_references_it() {
    let ws = Ws::new(
        r#"
{
  providers = { local = { isolation = "none" } },
  servers = {
    app = { provider = "local", plan = "small", zone = "local" },
    lb = { provider = "local", plan = "small", zone = "local", tags = { backend = "${server.app.private_ip}" } },
  },
}
"#,
    );
    let _destroy = Destroy(&ws);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let out = server_outputs(&ws);
    assert_eq!(out["server.app"]["private_ip"], "127.0.0.1");
    // The address changes outside prov (the sandbox's metadata is what the provider reports).
    let meta = Path::new(out["server.app"]["extra"]["dir"].as_str().unwrap()).join("meta.json");
    let mut m: Value = serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    m["address"] = "127.0.0.2".into();
    std::fs::write(&meta, m.to_string()).unwrap();

    ws.prov(&["drift"]).code(2).has("private_ip");
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.lb")
        .has("127.0.0.2");
    ws.prov(&["apply", "--auto-approve"]).ok();
    let lb: Value = serde_json::from_str(
        &ws.prov(&["state", "show", "server.lb", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_eq!(lb["attributes"]["tags"]["backend"], "127.0.0.2");
    assert_eq!(server_outputs(&ws)["server.app"]["private_ip"], "127.0.0.2");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    ws.prov(&["drift"]).ok();
}
