//! End-to-end tests over the built `prov` binary: plan/apply/destroy cycles, saved plans, failures, bad input.

#[cfg(feature = "aws")]
mod aws;
mod live;
mod taskservs;
mod taskservs_local;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod clusters;
mod cost;
mod drift_ignore;
mod exec;
mod extensions;
mod local;
mod nesting;
mod ownership;
mod pipeline;
mod policy_check;
mod process;
mod provider_settings;
mod report;
mod review;
mod secrets;
mod teams;
mod tfjson;
mod trust;
mod untrusted;
mod validate;

struct Ws {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

/// Servers of the local provider are processes on this host (sshd, services): a test that
/// applied some and did not destroy them (or failed before it could) would leave them running
/// after its directory is gone. Dropping the workspace destroys what is left, then kills any
/// process still running from it.
impl Drop for Ws {
    fn drop(&mut self) {
        let local = self.dir.join(".prov/local");
        let left = std::fs::read_dir(&local).is_ok_and(|mut d| d.next().is_some());
        if !left {
            return;
        }
        let _ = Command::new(env!("CARGO_BIN_EXE_prov"))
            .args(["destroy", "--auto-approve", "--lock-timeout", "30s"])
            .current_dir(&self.dir)
            .output();
        kill_processes_of(&self.dir);
    }
}

/// Kills (SIGKILL) every process whose command line names a path under `dir`.
fn kill_processes_of(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for p in procs.filter_map(Result::ok) {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

impl Ws {
    fn new(config: &str) -> Ws {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ws");
        std::fs::create_dir(&dir).unwrap();
        let ws = Ws { _tmp: tmp, dir };
        ws.write(config);
        ws
    }
    fn write(&self, config: &str) {
        std::fs::write(self.dir.join("main.ncl"), config).unwrap();
    }
    fn prov(&self, args: &[&str]) -> Run {
        prov_in(&self.dir, args, &[])
    }
    fn prov_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        prov_in(&self.dir, args, env)
    }
    /// The state as `prov show --json` prints it: compared before and after a failing command.
    fn state(&self) -> String {
        self.prov(&["show", "--json"]).ok().stdout
    }
    /// The whole state as `prov state pull` prints it: unredacted, and the same whether or not
    /// the configuration evaluates (`show --json` redacts every output when it does not).
    fn pulled(&self) -> String {
        self.prov(&["state", "pull"]).ok().stdout
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    fn code(self, c: i32) -> Run {
        assert_eq!(
            self.code, c,
            "expected exit {c}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
    fn has(self, s: &str) -> Run {
        assert!(
            self.stdout.contains(s) || self.stderr.contains(s),
            "expected output to contain {s:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    fn lacks(self, s: &str) -> Run {
        assert!(
            !self.stdout.contains(s) && !self.stderr.contains(s),
            "did not expect {s:?}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// The built `prov`, in `dir`, with a clean environment for the sim world and backends.
fn command(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_prov"));
    c.args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("PROV_SIM_FAIL_SERVERS")
        .env_remove("PROV_SIM_LATENCY_MS")
        .env_remove("PROV_BACKEND");
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// `command`, started in the background with its output captured.
fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    command(dir, args, env)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn prov_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(dir, args, env);
    let Output {
        status,
        stdout,
        stderr,
    } = c.output().unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into(),
        stderr: String::from_utf8_lossy(&stderr).into(),
    }
}

const TWO_SERVERS: &str = r#"
let prov = import "prov/schemas.ncl" in
{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           taskservs = { redis = { version = "1.0.0", settings = { maxmemory = "64mb" } } } },
    web = { provider = "sim", plan = "small", zone = "sim-a",
            tags = { db = "${server.db.private_ip}" } },
  },
  outputs = { web_ip = "${server.web.public_ip}" },
}
"#;

#[test]
fn plan_apply_noop_edit_apply_destroy() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("+ server.db")
        .has("+ taskserv.db.redis")
        .has("tags.db")
        .has("(known after apply)")
        .has("Plan: 3 to add, 0 to change, 0 to replace, 0 to destroy.");
    assert!(
        !ws.dir.join(".prov/state").exists(),
        "plan must not create the state"
    );
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 3 succeeded")
        .has("web_ip = ");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    let ip = ws.prov(&["output", "web_ip"]).ok().stdout;
    assert!(ip.trim().contains('.'), "web_ip should be an address: {ip}");
    ws.prov(&["state", "list"])
        .ok()
        .has("server.db\nserver.web\ntaskserv.db.redis");
    ws.prov(&["state", "show", "server.web"])
        .ok()
        .has("public_ip");

    // Edit: resize web in place, reconfigure redis, move db to another zone (replace).
    ws.write(
        &TWO_SERVERS
            .replace(
                r#"web = { provider = "sim", plan = "small""#,
                r#"web = { provider = "sim", plan = "medium""#,
            )
            .replace("64mb", "128mb"),
    );
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.web")
        .has(r#"plan = "small" -> "medium""#)
        .has("~ taskserv.db.redis")
        .has("Plan: 0 to add, 2 to change, 0 to replace, 0 to destroy.");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    ws.write(&TWO_SERVERS.replace(
        r#"db = { provider = "sim", plan = "small", zone = "sim-a""#,
        r#"db = { provider = "sim", plan = "small", zone = "sim-b""#,
    ));
    ws.prov(&["plan"])
        .ok()
        .has("-/+ server.db")
        .has("zone forces replacement")
        .has("-/+ taskserv.db.redis")
        .has("server.db is replaced")
        // web's tag refers to db's address, which changes with the replacement.
        .has("~ server.web");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    let sim = ws.prov(&["sim", "list"]).ok().stdout;
    assert_eq!(
        sim.lines().count(),
        2,
        "two servers in the sim world: {sim}"
    );

    ws.prov(&["destroy", "--auto-approve"])
        .ok()
        .has("destroyed");
    assert_eq!(ws.prov(&["state", "list"]).ok().stdout, "");
    assert_eq!(ws.prov(&["sim", "list"]).ok().stdout, "");
}

/// `prov apply` of a workspace whose state exists reads the state while the configuration is
/// evaluated (here: main.ncl imports nothing and names no backend; one that imports, as most
/// tests' do, is read beside the model instead) and refreshes it while the model is built, as
/// `prov plan` does: drift and servers deleted outside prov are planned and applied as before,
/// a configuration error still wins and changes nothing, and a state directory without a
/// database is created once the configuration is valid.
#[test]
fn apply_of_an_existing_state_starts_its_refresh_early() {
    let config = r#"{ servers = {
  db = { provider = "sim", plan = "small", zone = "sim-a" },
  web = { provider = "sim", plan = "small", zone = "sim-a", tags = { db = "${server.db.private_ip}" } },
} }"#;
    let ws = Ws::new(config);
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 2 succeeded");
    ws.prov(&["sim", "set", "web", "tags.env", "hacked"]).ok();
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Changed outside prov (found by refresh)")
        .has("+ tags.env = \"hacked\"")
        .has("~ server.web (sim) will be updated in place")
        .has("Apply complete: 1 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");

    ws.prov(&["sim", "delete", "db"]).ok();
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("+ server.db (sim) will be created")
        .has("~ server.web (sim) will be updated in place")
        .has("Apply complete: 2 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    let before = ws.pulled();
    ws.write(&config.replace(
        "provider = \"sim\", plan = \"small\", zone = \"sim-a\" }",
        "provider = \"simm\", plan = \"small\", zone = \"sim-a\" }",
    ));
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("unknown provider \"simm\"")
        .lacks("will be");
    assert_eq!(before, ws.pulled(), "bad input must not change the state");

    ws.write(config);
    let state = ws.dir.join(".prov/state");
    std::fs::remove_dir_all(&state).unwrap();
    std::fs::create_dir(&state).unwrap();
    ws.write(&config.replace("zone = \"sim-a\" }", "zone = \"sim-b\" }"));
    // An empty directory holds no state: nothing recorded, both servers' addresses tagged live.
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("already tagged");
    assert!(ws.prov(&["state", "list"]).ok().stdout.is_empty());
    ws.prov(&["apply", "--auto-approve", "--adopt"])
        .ok()
        .has("Apply complete");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
}

#[test]
fn saved_plans_stale_and_foreign_are_refused() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["plan", "--out", "first.plan"])
        .ok()
        .has("Saved the plan");
    ws.prov(&["apply", "first.plan"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    // Stale: made, then the state moved on.
    ws.write(&TWO_SERVERS.replace("64mb", "256mb"));
    ws.prov(&["plan", "--out", "second.plan"]).ok();
    ws.prov(&["apply", "--auto-approve", "--target", "taskserv.db.redis"])
        .ok();
    let before = ws.state();
    ws.prov(&["apply", "second.plan"])
        .code(1)
        .has("stale")
        .has("prov plan");
    assert_eq!(before, ws.state(), "a refused plan changes nothing");
    // A saved plan from before the state existed is stale as well.
    ws.prov(&["apply", "first.plan"]).code(1).has("stale");

    // Foreign: a plan of another workspace's state.
    let other = Ws::new(TWO_SERVERS);
    other.prov(&["apply", "--auto-approve"]).ok();
    // Usage errors exit 1 (2 means "changes present" to pipelines).
    other.prov(&["plan", "--no-such-flag"]).code(1);
    other.write(&TWO_SERVERS.replace("64mb", "1gb"));
    other.prov(&["plan", "--out", "other.plan"]).ok();
    std::fs::copy(other.dir.join("other.plan"), ws.dir.join("other.plan")).unwrap();
    let before = ws.state();
    ws.prov(&["apply", "other.plan"])
        .code(1)
        .has("belongs to another state");
    assert_eq!(before, ws.state());

    // A tampered plan file is refused.
    let p = ws.dir.join("tampered.plan");
    let text = std::fs::read_to_string(other.dir.join("other.plan"))
        .unwrap()
        .replace("1gb", "2gb");
    std::fs::write(&p, text).unwrap();
    ws.prov(&["apply", "tampered.plan"])
        .code(1)
        .has("checksum mismatch");
}

#[test]
fn failure_skips_dependents_and_rerun_finishes() {
    let cfg = r#"{
      servers = {
        good = { provider = "sim", plan = "small", zone = "sim-a" },
        bad = { provider = "sim", plan = "small", zone = "sim-a",
                taskservs = { etcd = { version = "1.0.0" } } },
        after-bad = { provider = "sim", plan = "small", zone = "sim-a", depends_on = ["server.bad"] },
        uses-bad = { provider = "sim", plan = "small", zone = "sim-a", tags = { peer = "${server.bad.public_ip}" } },
      },
    }"#;
    let ws = Ws::new(cfg);
    ws.prov_env(
        &["apply", "--auto-approve"],
        &[("PROV_SIM_FAIL_SERVERS", "bad")],
    )
    .code(1)
    .has("Apply incomplete: 1 succeeded, 1 failed, 3 skipped")
    .has("failed: server.bad")
    .has("skipped: server.after-bad")
    .has("skipped: server.uses-bad")
    .has("skipped: taskserv.bad.etcd");
    // The failed create is not recorded; its note stays until the next run has looked for a
    // server it may have left behind.
    let listed = ws.prov(&["state", "list"]).ok().has("server.good");
    assert!(!listed.stdout.contains("server.bad"), "{}", listed.stdout);
    assert!(
        listed.stderr.contains("pending: server.bad"),
        "{}",
        listed.stderr
    );
    ws.prov(&["plan"])
        .ok()
        .has("the create never happened")
        .has("Plan: 4 to add, 0 to change, 0 to replace, 0 to destroy.")
        .lacks("+ server.good");
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("4 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

#[test]
fn graph_and_validate() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["validate"]).ok().has("2 servers, 1 taskservs");
    ws.prov(&["graph"])
        .ok()
        .has("digraph")
        .has(r#""server.db" -> "server.web""#)
        .has(r#""server.db" -> "taskserv.db.redis""#);
}

/// Applies a valid config, breaks it, and checks the error names the place and nothing changed.
fn bad_input(broken: &str, expect: &[&str]) {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let before = ws.pulled();
    ws.write(broken);
    for cmd in [&["plan"][..], &["apply", "--auto-approve"], &["validate"]] {
        let mut r = ws.prov(cmd).code(1);
        for e in expect {
            r = r.has(e);
        }
        r.lacks("panicked");
    }
    assert_eq!(before, ws.pulled(), "bad input must not change the state");
}

#[test]
fn bad_input_syntax_error() {
    bad_input(
        "{ servers = { web = { provider = \"sim\", plan = } } }",
        &["main.ncl:1:"],
    );
}

#[test]
fn bad_input_contract_violation() {
    bad_input(
        r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a",
             firewall_rules = [{ direction = 'sideways, protocol = 'tcp, action = 'allow }] } } }"#,
        &["main.ncl:2:"],
    );
    bad_input(
        r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a", colour = "blue" } } }"#,
        &["colour", "main.ncl:1:"],
    );
}

#[test]
fn bad_input_duplicate() {
    bad_input(
        r#"{ servers = { a = { provider = "sim", plan = "small", zone = "sim-a", hostname = "same" },
                        b = { provider = "sim", plan = "small", zone = "sim-a", hostname = "same" } } }"#,
        &[
            "server.b",
            "duplicate hostname \"same\"",
            "server.a",
            "main.ncl:",
        ],
    );
    bad_input(
        r#"{ servers = { a = { provider = "sim", plan = "small", zone = "sim-a" } },
             clusters = { c = { name = "c", servers = ["a"], components = [
               { name = "x", type = 'application }, { name = "x", type = 'application } ] } } }"#,
        &["duplicate address", "cluster.c.x"],
    );
}

#[test]
fn bad_input_dangling_reference() {
    bad_input(
        r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a", tags = { x = "${server.nope.public_ip}" } } } }"#,
        &[
            "server.web",
            "main.ncl:1:",
            "tags.x refers to ${server.nope.public_ip}",
            "server.nope is not declared",
        ],
    );
    bad_input(
        r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a", depends_on = ["server.gone"] } } }"#,
        &[
            "server.web",
            "depends_on names server.gone, which is not declared",
        ],
    );
}

#[test]
fn bad_input_cycle() {
    bad_input(
        r#"{ servers = {
             a = { provider = "sim", plan = "small", zone = "sim-a", depends_on = ["server.c"] },
             b = { provider = "sim", plan = "small", zone = "sim-a", tags = { x = "${server.a.public_ip}" } },
             c = { provider = "sim", plan = "small", zone = "sim-a", depends_on = ["server.b"] } } }"#,
        &[
            "dependency cycle",
            "server.a -> server.b -> server.c -> server.a",
            "main.ncl:",
        ],
    );
}

#[test]
fn bad_input_unknown_provider_and_taskserv() {
    bad_input(
        r#"{ servers = { web = { provider = "azure", plan = "small", zone = "sim-a" } } }"#,
        &[
            "server.web",
            "unknown provider \"azure\"",
            if cfg!(feature = "aws") {
                "known: aws, local, sim"
            } else {
                "known: local, sim"
            },
            "main.ncl:1:",
        ],
    );
}

#[test]
fn bad_input_prevent_destroy() {
    let protected = TWO_SERVERS.replace(
        r#"zone = "sim-a","#,
        r#"zone = "sim-a", lifecycle = { prevent_destroy = true },"#,
    );
    let ws = Ws::new(&protected);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let before = ws.state();
    ws.prov(&["destroy", "--auto-approve"])
        .code(1)
        .has("server.db")
        .has("prevent_destroy")
        .has("main.ncl:");
    ws.write(&protected.replace(
        r#"zone = "sim-a", lifecycle"#,
        r#"zone = "sim-b", lifecycle"#,
    ));
    ws.prov(&["plan"])
        .code(1)
        .has("server.db")
        .has("prevent_destroy")
        .has("replace it (zone forces replacement)");
    assert_eq!(before, ws.state());
}

#[test]
fn too_deep_config_is_an_error_not_an_abort() {
    let mut deep = String::from("{ servers = {}, outputs = { x = ");
    for _ in 0..60_000 {
        deep.push_str("{ a = ");
    }
    deep.push('1');
    for _ in 0..60_000 {
        deep.push_str(" }");
    }
    deep.push_str(" } }");
    let ws = Ws::new(&deep);
    ws.prov(&["plan"]).code(1).has("main.ncl:1:").has("nest");
}

#[test]
fn quickstart_example_applies_and_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("quickstart");
    copy_example(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/quickstart")),
        &dir,
    );
    prov_in(&dir, &["apply", "--auto-approve"], &[])
        .ok()
        .has("Apply complete: 6 succeeded")
        .has("taskserv.web-01.heartbeat: health check passed");
    prov_in(&dir, &["plan", "--detailed-exitcode"], &[])
        .ok()
        .has("No changes.");
    let out = prov_in(&dir, &["output", "--json"], &[]).ok().stdout;
    let outputs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let motd = std::fs::read_to_string(outputs["web_root"]["value"].as_str().unwrap()).unwrap();
    assert!(motd.starts_with("Web server, this is web-01"), "{motd}");
    // The heartbeat service really runs in web-01's sandbox.
    let beat = outputs["heartbeat"]["value"].as_str().unwrap();
    assert!(std::fs::read_to_string(beat).unwrap().contains("db at "));
    // A settings change is planned as a configure of that one taskserv.
    let main = std::fs::read_to_string(dir.join("main.ncl")).unwrap();
    std::fs::write(
        dir.join("main.ncl"),
        main.replace("interval = 2,", "interval = 1,"),
    )
    .unwrap();
    prov_in(&dir, &["plan"], &[])
        .ok()
        .has("taskserv.web-01.heartbeat (heartbeat) will be configured")
        .has("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    prov_in(&dir, &["apply", "--auto-approve"], &[]).ok();
    // Stopped outside prov: drift, and the next plan starts it again.
    let pid_file = std::path::PathBuf::from(beat).with_file_name("heartbeat.pid");
    let pid = std::fs::read_to_string(&pid_file).unwrap();
    assert!(Command::new("kill")
        .arg(pid.trim())
        .status()
        .unwrap()
        .success());
    wait_gone(&pid);
    prov_in(&dir, &["drift"], &[])
        .code(2)
        .has("taskserv.web-01.heartbeat: stopped outside prov");
    prov_in(&dir, &["plan"], &[])
        .ok()
        .has("taskserv.web-01.heartbeat (heartbeat) will be restarted (stopped outside prov)")
        .has("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    prov_in(&dir, &["apply", "--auto-approve"], &[])
        .ok()
        .has("taskserv.web-01.heartbeat: health check passed");
    prov_in(&dir, &["drift"], &[]).ok().has("No drift");
    prov_in(&dir, &["destroy", "--auto-approve"], &[]).ok();
    let left: Vec<_> = std::fs::read_dir(dir.join(".prov/local"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "sandboxes left behind: {left:?}");
}

/// Waits (up to 20 s) until process `pid` has exited, or is a zombie its parent has yet to reap:
/// redis saves its data on SIGTERM first, which takes longer on a slow disk than any fixed pause.
fn wait_gone(pid: &str) {
    let stat = format!("/proc/{}/stat", pid.trim());
    let t = std::time::Instant::now();
    while std::fs::read_to_string(&stat).is_ok_and(|s| !s.contains(") Z ")) {
        assert!(
            t.elapsed().as_secs() < 20,
            "process {pid} still runs 20 s after kill"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Copies an example workspace (without its `.prov/`) into `to`.
fn copy_example(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".prov" {
            continue;
        }
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_example(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Waits until an apply's pending notes are in the state (it holds its resource locks then).
fn wait_running(ws: &Ws) {
    let t = std::time::Instant::now();
    loop {
        let pulled: serde_json::Value =
            serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
        if !pulled["pending"].as_array().unwrap().is_empty() {
            return;
        }
        assert!(t.elapsed().as_secs() < 60, "the apply never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn state_lock_names_the_holder_and_lock_timeout_waits() {
    let ws = Ws::new(TWO_SERVERS);
    let mut slow = spawn(
        &ws.dir,
        &["apply", "--auto-approve", "--parallelism", "1"],
        &[("PROV_SIM_LATENCY_MS", "700")],
    );
    wait_running(&ws);
    // Plans lock nothing: they run beside the apply.
    ws.prov(&["plan"]).ok();
    // Another apply of the same resources fails at once, naming the holder...
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("locked by")
        .has(&format!("pid {}", slow.id()))
        .has("operation \"apply\"")
        .has("lock id")
        .has("server.db");
    // ...or waits for it, then plans again and finds its work done.
    ws.prov(&["apply", "--auto-approve", "--lock-timeout", "60s"])
        .ok()
        .has("planning again")
        .has("No changes.");
    assert!(slow.wait().unwrap().success());
}

/// `prov plan` opens the state while it builds the model: when both fail, the configuration's
/// error is the one reported (as if one ran after the other), and alone each is reported.
#[test]
fn plan_reports_a_config_error_before_a_state_that_cannot_open() {
    let unreachable = r#"backend = { type = "pg", conn = "host=127.0.0.1 port=1 user=prov dbname=prov connect_timeout=2" }"#;
    let ws = Ws::new(&format!(
        r#"{{ {unreachable}, servers = {{ a = {{ provider = "nope", plan = "small", zone = "sim-a" }} }} }}"#
    ));
    // The configured connection, not a PROV_PG_CONN the test run may export.
    let own_conn = [("PROV_PG_CONN", "")];
    ws.prov_env(&["plan"], &own_conn)
        .code(1)
        .has("unknown provider \"nope\"")
        .lacks("127.0.0.1");
    std::fs::write(
        ws.dir.join("main.ncl"),
        format!(
            r#"{{ {unreachable}, servers = {{ a = {{ provider = "sim", plan = "small", zone = "sim-a" }} }} }}"#
        ),
    )
    .unwrap();
    ws.prov_env(&["plan"], &own_conn)
        .code(1)
        .has("127.0.0.1")
        .lacks("panicked");
}

#[test]
fn sigint_stops_starting_steps_and_records_finished_ones() {
    let mut cfg = String::from("{ servers = {\n");
    for i in 0..6 {
        let dep = if i > 0 {
            format!(", depends_on = [\"server.s{}\"]", i - 1)
        } else {
            String::new()
        };
        cfg.push_str(&format!(
            "  s{i} = {{ provider = \"sim\", plan = \"small\", zone = \"sim-a\"{dep} }},\n"
        ));
    }
    cfg.push_str("} }\n");
    let ws = Ws::new(&cfg);
    let mut child = spawn(
        &ws.dir,
        &["apply", "--auto-approve"],
        &[("PROV_SIM_LATENCY_MS", "400")],
    );
    // Let the first server finish (however loaded the machine), then interrupt.
    let mut seen = String::new();
    let mut reader = std::io::BufReader::new(child.stdout.take().unwrap());
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut reader, &mut line).unwrap() == 0 {
            break;
        }
        seen.push_str(&line);
        if line.contains("server.s0: created") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    std::io::Read::read_to_string(&mut reader, &mut seen).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = seen + &String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("Apply interrupted"), "{stdout}");
    let listed = ws.prov(&["state", "list"]).ok().stdout;
    let done = listed.lines().count();
    assert!(
        (1..6).contains(&done),
        "some but not all servers recorded: {listed}"
    );
    let sim = ws.prov(&["sim", "list"]).ok().stdout;
    assert_eq!(
        sim.lines().count(),
        done,
        "every server in the sim world is in the state"
    );
    ws.prov(&["plan"])
        .ok()
        .has(&format!("Plan: {} to add", 6 - done));
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

#[test]
fn output_only_changes_are_planned_and_applied() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(&TWO_SERVERS.replace(
        "outputs = {",
        r#"outputs = { db_ip = "${server.db.private_ip}", "#,
    ));
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("Changes to outputs:")
        .has("+ db_ip = \"10.");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["output", "db_ip"]).ok().has("10.");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

#[test]
fn bad_input_unknown_taskserv_implementation() {
    bad_input(
        r#"{ servers = { web = { provider = "sim", plan = "small", zone = "sim-a",
             taskservs = { redis = { implementation = "nope" } } } } }"#,
        &[
            "taskserv.web.redis",
            "unknown taskserv \"nope\"",
            "known: buildah, buildkit, cilium, containerd, coredns, etcd, kubernetes, postgres, redis, sim",
            "main.ncl:2:",
        ],
    );
}

#[test]
fn apply_json_emits_one_event_per_line() {
    let ws = Ws::new(TWO_SERVERS);
    let out = ws.prov(&["apply", "--auto-approve", "--json"]).ok().stdout;
    let events: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"apply_started"));
    assert_eq!(kinds.last(), Some(&"apply_finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "succeeded").count(), 3);
    // Each resource is recorded before anything that depends on it starts.
    let pos = |kind: &str, addr: &str| {
        events
            .iter()
            .position(|e| e["event"] == kind && e["address"] == addr)
            .unwrap()
    };
    assert!(pos("succeeded", "server.db") < pos("running", "taskserv.db.redis"));
    assert!(pos("succeeded", "server.db") < pos("running", "server.web"));
    assert!(events.iter().any(|e| e["event"] == "state_written"));
}

/// The old server of a create_before_destroy replace whose delete fails is not lost: the record
/// that names the new one keeps it as deposed, the next plan says it destroys it, and the next
/// apply does.
#[test]
fn create_before_destroy_whose_old_delete_fails_is_finished_next_run() {
    let cfg = r#"{ providers = { sim = { FAIL } }, servers = {
      web = { provider = "sim", plan = "small", zone = "sim-a", lifecycle = { create_before_destroy = true } },
    } }"#;
    let ws = Ws::new(&cfg.replace("FAIL", ""));
    ws.prov(&["apply", "--auto-approve"]).ok();
    let old = sim_hosts(&ws)["web"].clone();
    // The replace's calls: create the new one (1st), delete the old one (2nd, fails).
    ws.write(
        &cfg.replace("FAIL", "fail_call = 2")
            .replace("sim-a", "sim-b"),
    );
    ws.prov(&["apply", "--auto-approve"])
        .code(1)
        .has("injected failure");
    let new: serde_json::Value = serde_json::from_str(
        &ws.prov(&["state", "show", "server.web", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    assert_ne!(
        new["provider_id"],
        old.as_str(),
        "the record names the new server: {new}"
    );
    assert!(
        ws.prov(&["sim", "list"]).ok().stdout.contains(&old),
        "the old one still exists"
    );
    let pulled: serde_json::Value =
        serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    // The record that names the new server remembers the old one as deposed.
    assert_eq!(
        pulled["resources"][0]["record"]["deposed"][0]["provider_id"],
        old.as_str()
    );
    ws.write(&cfg.replace("FAIL", "").replace("sim-a", "sim-b"));
    ws.prov(&["plan"])
        .ok()
        .has(&format!("- server.web (deposed {old})"))
        .has("1 to destroy");
    ws.prov(&["apply", "--auto-approve"]).ok();
    let left = ws.prov(&["sim", "list"]).ok().stdout;
    assert!(!left.contains(&old), "{left}");
    assert_eq!(left.lines().count(), 1, "{left}");
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
}

#[test]
fn create_before_destroy_replaces_new_first() {
    let cfg = r#"{ servers = {
      web = { provider = "sim", plan = "small", zone = "sim-a", lifecycle = { create_before_destroy = true } },
      app = { provider = "sim", plan = "small", zone = "sim-a", tags = { web = "${server.web.private_ip}" } },
    } }"#;
    let ws = Ws::new(cfg);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let old = ws
        .prov(&["state", "show", "server.web", "--json"])
        .ok()
        .stdout;
    ws.write(&cfg.replacen("sim-a", "sim-b", 1));
    ws.prov(&["plan"])
        .ok()
        .has("+/- server.web")
        .has("(new one first)")
        .has("~ server.app");
    let out = ws.prov(&["apply", "--auto-approve", "--json"]).ok().stdout;
    let steps: Vec<(String, String)> = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "succeeded")
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_string(),
                e["step"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let at = |a: &str, s: &str| steps.iter().position(|x| x.0 == a && x.1 == s).unwrap();
    assert!(at("server.web", "create") < at("server.app", "update"));
    assert!(
        at("server.app", "update") < at("server.web", "destroy"),
        "{steps:?}"
    );
    let new = ws
        .prov(&["state", "show", "server.web", "--json"])
        .ok()
        .stdout;
    assert_ne!(old, new);
    assert_eq!(
        ws.prov(&["sim", "list"]).ok().stdout.lines().count(),
        2,
        "the old server is gone"
    );
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

/// A chain-shaped workspace of `n` servers: server i refers to server i-10's address.
fn many_servers(n: usize) -> String {
    chained_servers(n, "", ", zone = \"sim-a\"")
}

/// `n` sim servers in chains of ten (server i tags server i-10's private IP): `head` goes
/// before `servers` in the workspace record, `attrs` into every server.
fn chained_servers(n: usize, head: &str, attrs: &str) -> String {
    let mut cfg = format!("{{ {head}servers = {{\n");
    for i in 0..n {
        let tag = if i >= 10 {
            format!(
                ", tags = {{ prev = \"${{server.s{}.private_ip}}\" }}",
                i - 10
            )
        } else {
            String::new()
        };
        cfg.push_str(&format!(
            "  s{i} = {{ provider = \"sim\", plan = \"small\"{attrs}{tag} }},\n"
        ));
    }
    cfg.push_str("} }\n");
    cfg
}

/// A small deterministic generator (no extra crate): xorshift seeded from the clock, printed.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        eprintln!("rng seed {seed}");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Servers in the sim world by hostname.
fn sim_hosts(ws: &Ws) -> std::collections::BTreeMap<String, String> {
    ws.prov(&["sim", "list"])
        .ok()
        .stdout
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            (f[1].to_string(), f[0].to_string())
        })
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    const N: usize = 300;
    let ws = Ws::new(&many_servers(N));
    let mut rng = Rng::new();
    let mut kills = 0;
    let mut trials = 0;
    while trials < 20 {
        trials += 1;
        // At 100 ms a call, parallelism 10 and at least 200 servers left to create (see the
        // reset below), an apply runs for 2 s or more, longer than the longest wait before the
        // kill (1.65 s): every trial kills an apply in progress, however fast the machine.
        let mut child = command(
            &ws.dir,
            &["apply", "--auto-approve"],
            &[("PROV_SIM_LATENCY_MS", "100")],
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(150 + rng.below(1500)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();

        // The state opens and every record decodes.
        let pulled: serde_json::Value =
            serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
        let recorded: std::collections::BTreeMap<String, String> = pulled["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| &r["record"])
            .map(|r| {
                (
                    r["address"].as_str().unwrap().to_string(),
                    r["provider_id"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        let pending: std::collections::BTreeSet<String> = pulled["pending"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["address"].as_str().unwrap().to_string())
            .collect();
        // Every server in the world is in the state or in a pending operation.
        let world = sim_hosts(&ws);
        for (host, id) in &world {
            let addr = format!("server.{host}");
            assert!(
                recorded.get(&addr) == Some(id) || pending.contains(&addr),
                "trial {trials}: {addr} ({id}) exists but is neither recorded nor pending"
            );
        }
        // The next plan creates exactly what does not exist yet.
        let plan = ws.prov(&["plan"]).ok().stdout;
        let creates: std::collections::BTreeSet<String> = plan
            .lines()
            .filter_map(|l| l.trim_start().strip_prefix("+ server."))
            .map(|rest| rest.split_whitespace().next().unwrap().to_string())
            .collect();
        let missing: std::collections::BTreeSet<String> = (0..N)
            .map(|i| format!("s{i}"))
            .filter(|h| !world.contains_key(h))
            .collect();
        assert_eq!(
            creates, missing,
            "trial {trials}: the plan's creates are exactly the servers not yet created"
        );
        if world.len() > N / 3 {
            // Start over (pending operations included) so the next trial again kills an apply
            // with most of its work ahead of it.
            ws.prov(&["destroy", "--auto-approve"]).ok();
            assert!(
                sim_hosts(&ws).is_empty(),
                "trial {trials}: destroy left servers"
            );
        }
    }
    println!("{kills} of {trials} trials killed a running apply");
    assert!(
        kills >= 18,
        "nearly every trial should have killed a running apply ({kills} of {trials})"
    );
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    assert_state_matches_world(&ws);
}

/// Eight applies started together with a 300 ms lock timeout: exactly one runs; the others fail
/// naming its pid.
fn race_of_eight(ws: &Ws, env: &[(&str, &str)]) {
    let args = ["apply", "--auto-approve", "--lock-timeout", "300ms"];
    let children: Vec<_> = (0..8).map(|_| spawn(&ws.dir, &args, env)).collect();
    let pids: Vec<u32> = children.iter().map(|c| c.id()).collect();
    let outs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    // An apply that started only after the winner finished (a loaded machine starts processes
    // late) finds nothing to do and succeeds: that is not a second apply carrying out changes.
    let did_work = |o: &std::process::Output| {
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("No changes.")
    };
    let winners: Vec<usize> = (0..8).filter(|&i| did_work(&outs[i])).collect();
    assert_eq!(winners.len(), 1, "exactly one apply carried out changes");
    let winner = pids[winners[0]];
    for (i, o) in outs
        .iter()
        .enumerate()
        .filter(|(i, o)| *i != winners[0] && !o.status.success())
    {
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{i}: {err}");
        assert!(
            err.contains("locked by") && err.contains(&format!("pid {winner}")),
            "{err}"
        );
    }
}

/// The state's servers are exactly the sim world's, id for id.
fn assert_state_matches_world(ws: &Ws) {
    let pulled: serde_json::Value =
        serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    let recorded: std::collections::BTreeMap<String, String> = pulled["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["record"])
        .filter(|r| r["kind"] == "server")
        .map(|r| {
            (
                r["address"].as_str().unwrap()["server.".len()..].to_string(),
                r["provider_id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(recorded, sim_hosts(ws));
}

#[test]
fn concurrent_applies_take_turns_on_the_lock() {
    let ws = Ws::new(&many_servers(40));
    // Short lock timeout: one applies, the other seven give up naming it.
    race_of_eight(&ws, &[("PROV_SIM_LATENCY_MS", "300")]);
    assert_state_matches_world(&ws);

    // Long lock timeout: they queue; the first applies a change, the rest find nothing to do.
    ws.write(&many_servers(40).replace("plan = \"small\"", "plan = \"medium\""));
    let latency = [("PROV_SIM_LATENCY_MS", "300")];
    let outs: Vec<_> = (0..8)
        .map(|_| {
            spawn(
                &ws.dir,
                &["apply", "--auto-approve", "--lock-timeout", "120s"],
                &latency,
            )
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    assert!(outs.iter().all(|o| o.status.success()));
    let changed = outs
        .iter()
        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("Apply complete: 40 succeeded"))
        .count();
    assert_eq!(
        changed, 1,
        "one apply made the change, the others found it done"
    );
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    assert_state_matches_world(&ws);
}

/// Drift found by `prov drift --json`, as (address, status, attribute) triples.
fn drift_items(ws: &Ws, extra: &[&str], code: i32) -> Vec<(String, String, String)> {
    let mut args = vec!["drift", "--json"];
    args.extend_from_slice(extra);
    let out = ws.prov(&args).code(code).stdout;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["format"], "prov-drift");
    assert_eq!(v["format_version"], 1);
    assert_eq!(v["drift"], code == 2);
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ignored"].is_null() || i["ignored"]["expired"] == true)
        .map(|i| {
            (
                i["address"].as_str().unwrap().to_string(),
                i["status"].as_str().unwrap().to_string(),
                i["attribute"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn drift_finds_out_of_band_changes_and_never_writes_the_state() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(drift_items(&ws, &[], 0).is_empty());
    ws.prov(&["drift"]).ok().has("No drift");

    ws.prov(&["sim", "delete", "web"]).ok();
    ws.prov(&["sim", "set", "db", "plan", "\"large\""]).ok();
    ws.prov(&["sim", "stop-taskserv", "db", "redis"]).ok();
    ws.prov(&["sim", "add-unmanaged", "stray"]).ok();
    let state_before = ws.state();
    let lock_dir = std::fs::read_dir(ws.dir.join(".prov/state"))
        .unwrap()
        .count();
    let items = drift_items(&ws, &[], 2);
    let want = |a: &str, s: &str, attr: &str| (a.to_string(), s.to_string(), attr.to_string());
    assert!(items.contains(&want("server.web", "gone", "")), "{items:?}");
    assert!(
        items.contains(&want("server.db", "changed", "plan")),
        "{items:?}"
    );
    assert!(
        items.contains(&want("taskserv.db.redis", "stopped", "")),
        "{items:?}"
    );
    assert!(
        items.contains(&want("server.stray", "unmanaged", "")),
        "{items:?}"
    );
    assert_eq!(items.len(), 4, "{items:?}");
    ws.prov(&["drift"])
        .code(2)
        .has("- server.web: deleted outside prov")
        .has(r#"plan = "small" -> "large""#);
    // Drift never writes the state.
    assert_eq!(state_before, ws.state());
    assert_eq!(
        lock_dir,
        std::fs::read_dir(ws.dir.join(".prov/state"))
            .unwrap()
            .count()
    );

    // Acknowledged drift is left out until it expires; expired entries count again.
    let ignore = ws.dir.join("ignore.json");
    std::fs::write(
        &ignore,
        r#"[{"address": "server.db", "attribute": "plan", "reason": "resized by the DBA, ticket 42", "expires": "2999-01-01"},
           {"address": "server.stray", "reason": "a colleague's test box", "expires": "2000-01-01"}]"#,
    )
    .unwrap();
    let items = drift_items(&ws, &["--ignore", "ignore.json"], 2);
    assert!(
        !items.iter().any(|i| i.0 == "server.db"),
        "acknowledged: {items:?}"
    );
    assert!(
        items.contains(&want("server.stray", "unmanaged", "")),
        "expired entries count again: {items:?}"
    );
    ws.prov(&["drift", "--ignore", "ignore.json"])
        .code(2)
        .has("ticket 42")
        .has("EXPIRED, counted again");

    // A plan refreshes and shows what changed outside prov before its own changes.
    ws.prov(&["plan"])
        .ok()
        .has("Changed outside prov")
        .has(r#"plan = "large" -> "small""#)
        .has("+ server.web");
    ws.prov(&["plan", "--refresh=false", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    ws.prov(&["plan", "--expect-no-changes"])
        .code(1)
        .has("--expect-no-changes");

    // Accept the real world; then nothing but the unmanaged server is drift.
    ws.prov(&["apply", "--refresh-only", "--auto-approve"]).ok();
    assert_eq!(
        drift_items(&ws, &[], 2),
        vec![want("server.stray", "unmanaged", "")]
    );
    ws.prov(&["sim", "delete", "stray"]).ok();
    assert!(drift_items(&ws, &[], 0).is_empty());
    // A taskserv at another version than recorded.
    ws.prov(&["sim", "taskserv-version", "db", "redis", "2.0.0"])
        .ok();
    assert_eq!(
        drift_items(&ws, &[], 2),
        vec![want("taskserv.db.redis", "version", "")]
    );
    ws.prov(&["drift"])
        .code(2)
        .has("version 1.0.0 recorded, 2.0.0 installed");
    ws.prov(&["plan", "--refresh-only", "--out", "accept.plan"])
        .ok()
        .has("Refresh: 1 record");
    ws.prov(&["apply", "accept.plan"]).ok();
    assert!(drift_items(&ws, &[], 0).is_empty());
    ws.prov(&["state", "list"]).ok().lacks("server.web");
    // And converging again brings the configuration back.
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--expect-no-changes"]).ok();
}

#[test]
fn interrupted_operations_are_adopted_or_finished() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let web_id = sim_hosts(&ws)["web"].clone();
    // As if an apply died after the provider created server.web but before recording it, and
    // another died while deleting a server the state no longer holds.
    ws.prov(&["sim", "add-unmanaged", "orphan"]).ok();
    let orphan_id = sim_hosts(&ws)["orphan"].clone();
    let mut dump: serde_json::Value =
        serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    let res = dump["resources"].as_array_mut().unwrap();
    let idx = res
        .iter()
        .position(|r| r["record"]["address"] == "server.web")
        .unwrap();
    let web = res.remove(idx)["record"].clone();
    dump["pending"] = serde_json::json!([
        {"address": "server.web", "operation": "create", "kind": "server", "implementation": "sim",
         "provider_id": null, "spec": {"config": web["config"], "attributes": web["attributes"]},
         "dependencies": [], "started_at": 1764000000, "run_id": "crashed"},
        {"address": "server.orphan", "operation": "delete", "kind": "server", "implementation": "sim",
         "provider_id": orphan_id, "spec": {}, "dependencies": [], "started_at": 1764000000, "run_id": "crashed"}
    ]);
    std::fs::write(
        ws.dir.join("edited.json"),
        serde_json::to_string(&dump).unwrap(),
    )
    .unwrap();
    ws.prov(&["state", "push", "edited.json", "--force"]).ok();
    ws.prov(&["state", "list"])
        .ok()
        .has("pending: server.web")
        .has("pending: server.orphan");

    ws.prov(&["plan"])
        .ok()
        .has("Interrupted operations")
        .has(&format!("found {web_id}"))
        .has("will be adopted")
        .has("the delete will be finished")
        .lacks("+ server.web");
    ws.prov(&["apply", "--auto-approve"]).ok();
    let show = ws
        .prov(&["state", "show", "server.web", "--json"])
        .ok()
        .stdout;
    assert!(show.contains(&web_id), "adopted with its id: {show}");
    assert!(
        !sim_hosts(&ws).contains_key("orphan"),
        "the interrupted delete was finished"
    );
    ws.prov(&["state", "list"]).ok().lacks("pending");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

#[test]
fn state_commands_rm_mv_history_pull_push_import() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let db_id = sim_hosts(&ws)["db"].clone();

    // rm forgets; the record stays in history; import adopts the real server again.
    ws.prov(&["state", "rm", "server.db"])
        .ok()
        .has("Removed server.db");
    ws.prov(&["state", "list"]).ok().lacks("server.db\n");
    ws.prov(&["state", "history", "server.db"])
        .ok()
        .has("delete")
        .has(&db_id);
    ws.prov(&["state", "rm", "server.nope"])
        .code(1)
        .has("not in the state");
    ws.prov(&["import", "server.db", "sim-doesnotexist"])
        .code(1)
        .has("no server with id");
    ws.prov(&["import", "server.db", &db_id])
        .ok()
        .has("Imported");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    ws.prov(&["import", "server.db", &db_id])
        .code(1)
        .has("already in the state");

    // mv after a rename in the configuration: no replacement.
    ws.write(
        &TWO_SERVERS
            .replace("web = {", r#"frontend = { hostname = "web","#)
            .replace("server.web.public_ip", "server.frontend.public_ip"),
    );
    ws.prov(&["plan"])
        .ok()
        .has("+ server.frontend")
        .has("- server.web");
    ws.prov(&["state", "mv", "server.web", "server.frontend"])
        .ok();
    ws.prov(&["state", "mv", "server.frontend", "taskserv.db.x"])
        .code(1)
        .has("cannot move");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    // pull writes a private, versioned file; push refuses an older serial unless forced.
    ws.prov(&["state", "pull", "--out", "old.json"]).ok();
    let mode = std::fs::metadata(ws.dir.join("old.json"))
        .unwrap()
        .permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o600
    );
    ws.prov(&["state", "rm", "taskserv.db.redis"]).ok();
    ws.prov(&["state", "push", "old.json"])
        .code(1)
        .has("serial");
    ws.prov(&["state", "push", "old.json", "--force"]).ok();
    ws.prov(&["state", "list"]).ok().has("taskserv.db.redis");
    let other = Ws::new(TWO_SERVERS);
    other.prov(&["apply", "--auto-approve"]).ok();
    std::fs::copy(ws.dir.join("old.json"), other.dir.join("foreign.json")).unwrap();
    other
        .prov(&["state", "push", "foreign.json"])
        .code(1)
        .has("lineage");
}

/// The test PostgreSQL server (`.ci/run` starts one), or None to skip — unless PROV_REQUIRE_PG is set.
fn test_pg() -> Option<String> {
    match std::env::var("PROV_TEST_PG") {
        Ok(c) if !c.is_empty() => Some(c),
        _ if std::env::var_os("PROV_REQUIRE_PG").is_some() => {
            panic!("PROV_REQUIRE_PG is set but PROV_TEST_PG is not")
        }
        _ => {
            eprintln!("SKIPPED: no PostgreSQL (set PROV_TEST_PG; see state/tests/start-pg.sh)");
            None
        }
    }
}

/// A workspace whose state is in PostgreSQL under a key of its own.
fn pg_ws(config: &str, tag: &str) -> Ws {
    let unique = format!(
        "{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let with_backend = config.replacen(
        '{',
        &format!("{{ backend = {{ type = \"pg\", workspace = \"{unique}\" }},"),
        1,
    );
    Ws::new(&with_backend)
}

/// A saved plan names the state it was made against: applying it opens that state without
/// evaluating main.ncl (here broken after the plan), never records a connection string, and
/// refuses a backend flag naming another kind.
#[test]
fn saved_plans_apply_to_the_state_they_name() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["plan", "--out", "p.plan"]).ok();
    let main = std::fs::read_to_string(ws.dir.join("main.ncl")).unwrap();
    std::fs::write(ws.dir.join("main.ncl"), "{ this is not nickel").unwrap();
    ws.prov(&["apply", "--backend", "pg", "p.plan"])
        .code(1)
        .has("the saved plan was made against the sled state, but the pg backend is asked for");
    assert!(!ws.dir.join(".prov/state").exists(), "nothing applied");
    ws.prov(&["apply", "p.plan"])
        .ok()
        .has("Apply complete: 3 succeeded");
    std::fs::write(ws.dir.join("main.ncl"), &main).unwrap();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    let Some(conn) = test_pg() else { return };
    let ws = pg_ws(
        TWO_SERVERS
            .trim_start()
            .trim_start_matches("let prov = import \"prov/schemas.ncl\" in"),
        "saved",
    );
    // The connection string (with its password) is in the environment; the key in main.ncl.
    let env = [("PROV_PG_CONN", conn.as_str())];
    ws.prov_env(&["plan", "--out", "p.plan"], &env).ok();
    let pg_main = std::fs::read_to_string(ws.dir.join("main.ncl")).unwrap();
    let file = std::fs::read_to_string(ws.dir.join("p.plan")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&file).unwrap();
    let v = &v["plan"];
    assert_eq!(v["backend"]["type"], "pg", "{}", v["backend"]);
    assert!(v["backend"]["workspace"]
        .as_str()
        .unwrap()
        .starts_with("saved-"));
    assert!(
        !file.contains(&conn),
        "the plan file holds the connection string"
    );
    std::fs::write(ws.dir.join("main.ncl"), "{ this is not nickel").unwrap();
    ws.prov_env(&["apply", "p.plan"], &env)
        .ok()
        .has("Apply complete: 3 succeeded");
    assert!(
        !ws.dir.join(".prov/state").exists(),
        "applied to PostgreSQL, not sled"
    );
    std::fs::write(ws.dir.join("main.ncl"), &pg_main).unwrap();
    ws.prov_env(&["state", "list"], &env)
        .ok()
        .has("server.db\nserver.web\ntaskserv.db.redis");
    ws.prov_env(&["destroy", "--auto-approve"], &env).ok();
}

#[test]
fn postgresql_backend_lifecycle() {
    let Some(conn) = test_pg() else { return };
    let ws = pg_ws(
        TWO_SERVERS
            .trim_start()
            .trim_start_matches("let prov = import \"prov/schemas.ncl\" in"),
        "lifecycle",
    );
    let env = [("PROV_PG_CONN", conn.as_str())];
    ws.prov_env(&["apply", "--auto-approve"], &env)
        .ok()
        .has("Apply complete: 3 succeeded");
    assert!(
        !ws.dir.join(".prov/state").exists(),
        "no sled state: the records are in PostgreSQL"
    );
    ws.prov_env(&["plan", "--detailed-exitcode"], &env).ok();
    ws.prov_env(&["state", "list"], &env)
        .ok()
        .has("server.db\nserver.web\ntaskserv.db.redis");
    ws.prov_env(&["drift"], &env).ok();
    ws.prov_env(&["destroy", "--auto-approve"], &env).ok();
    assert_eq!(ws.prov_env(&["state", "list"], &env).ok().stdout, "");
    // Errors name the backend, hide the password, and change nothing.
    let bad = [(
        "PROV_PG_CONN",
        "postgresql://prov:secret-pw@127.0.0.1:1/prov",
    )];
    ws.prov_env(&["plan"], &bad)
        .code(1)
        .has("PostgreSQL")
        .lacks("secret-pw");
}

#[test]
fn postgresql_concurrent_applies_take_turns() {
    let Some(conn) = test_pg() else { return };
    let ws = pg_ws(&many_servers(30), "concurrency");
    race_of_eight(
        &ws,
        &[("PROV_SIM_LATENCY_MS", "300"), ("PROV_PG_CONN", &conn)],
    );
    let env = [("PROV_PG_CONN", conn.as_str())];
    ws.prov_env(&["plan", "--detailed-exitcode"], &env).ok();
    let pulled: serde_json::Value =
        serde_json::from_str(&ws.prov_env(&["state", "pull"], &env).ok().stdout).unwrap();
    assert_eq!(pulled["resources"].as_array().unwrap().len(), 30);
    assert_eq!(sim_hosts(&ws).len(), 30);
}

#[test]
fn sensitive_values_never_appear_in_plans_or_state_listings() {
    let cfg = r#"{ servers = { db = { provider = "sim", plan = "small", zone = "sim-a",
        tags = { token = "tag-secret-1" }, sensitive = ["tags.token"],
        taskservs = { pg = { version = "1.0.0", settings = { user = "app", password = "pw-secret-1" },
                             sensitive = ["settings.password"] } } } } }"#;
    let ws = Ws::new(cfg);
    ws.prov(&["plan", "--out", "p.plan"])
        .ok()
        .lacks("secret")
        .has("(sensitive value)")
        .has(r#""app""#);
    ws.prov(&["show", "--json", "p.plan"])
        .ok()
        .lacks("secret")
        .has("after_sensitive");
    ws.prov(&["apply", "p.plan"]).ok().lacks("secret");
    ws.prov(&["state", "show", "taskserv.db.pg"])
        .ok()
        .lacks("secret")
        .has("(sensitive value)");
    ws.prov(&["state", "show", "taskserv.db.pg", "--json"])
        .ok()
        .lacks("secret");
    ws.prov(&["show", "--json"]).ok().lacks("secret");
    ws.write(
        &cfg.replace("pw-secret-1", "pw-secret-2")
            .replace("tag-secret-1", "tag-secret-2"),
    );
    ws.prov(&["plan"])
        .ok()
        .lacks("secret")
        .has("~ taskserv.db.pg")
        .has("settings.password")
        .has("~ server.db");
    ws.prov(&["apply", "--auto-approve"]).ok().lacks("secret");
    ws.prov(&["sim", "set", "db", "tags.token", "tag-secret-3"])
        .ok();
    ws.prov(&["drift"])
        .code(2)
        .lacks("secret")
        .has("tags.token");
    ws.prov(&["drift", "--json"]).code(2).lacks("secret");
    ws.prov(&["state", "history", "server.db"])
        .ok()
        .lacks("secret");
    // `state pull` is the full backup (mode 0600): it keeps the values so a push restores them.
    ws.prov(&["state", "pull"]).ok().has("pw-secret-2");
}

/// A value that shows a secret is a secret: references carry sensitivity along a chain
/// (db's token → web's tag → app's tag), into interpolated strings and into workspace outputs;
/// apply still uses the real values.
#[test]
fn sensitivity_follows_references_into_other_resources_and_outputs() {
    let cfg = r#"{ servers = {
        db = { provider = "sim", plan = "small", zone = "sim-a",
               tags = { token = "tok-secret-1", team = "data" }, sensitive = ["tags.token"] },
        web = { provider = "sim", plan = "small", zone = "sim-a",
                tags = { copy = "${server.db.tags.token}", auth = "Bearer ${server.db.tags.token}",
                         team = "${server.db.tags.team}" } },
        app = { provider = "sim", plan = "small", zone = "sim-a",
                tags = { again = "${server.web.tags.copy}", whole = "${server.web.tags.team}" } },
      },
      outputs = { token = "${server.db.tags.token}", all_tags = "${server.db.tags}",
                  team = "${server.db.tags.team}" } }"#;
    let ws = Ws::new(cfg);
    let plan = ws
        .prov(&["plan", "--out", "p.plan"])
        .ok()
        .lacks("secret")
        .has(r#"tags.team  = "data""#);
    // Non-secret values referenced from the same resource stay visible.
    assert!(
        plan.stdout.contains(r#"+ team = "data""#),
        "{}",
        plan.stdout
    );
    for line in [
        "tags.copy",
        "tags.auth",
        "tags.again",
        "+ token",
        "+ all_tags",
    ] {
        let shown = plan
            .stdout
            .lines()
            .find(|l| l.contains(line))
            .unwrap_or_else(|| panic!("no {line} in\n{}", plan.stdout));
        assert!(shown.contains("(sensitive value)"), "{shown}");
    }
    ws.prov(&["show", "p.plan"]).ok().lacks("secret");
    ws.prov(&["show", "--json", "p.plan"]).ok().lacks("secret");
    ws.prov(&["apply", "p.plan"])
        .ok()
        .lacks("secret")
        .has("token = (sensitive value)")
        .has(r#"team = "data""#);
    for addr in ["server.web", "server.app"] {
        ws.prov(&["state", "show", addr]).ok().lacks("secret");
    }
    // Listing outputs redacts; naming one prints its value (what scripts ask for).
    ws.prov(&["output"])
        .ok()
        .lacks("secret")
        .has("token = (sensitive value)")
        .has(r#"team = "data""#);
    let listed: serde_json::Value =
        serde_json::from_str(&ws.prov(&["output", "--json"]).ok().stdout).unwrap();
    assert_eq!(listed["all_tags"]["value"], "(sensitive value)");
    assert_eq!(listed["all_tags"]["sensitive"], true);
    assert_eq!(listed["team"]["value"], "data");
    assert_eq!(
        ws.prov(&["output", "token"]).ok().stdout.trim(),
        "tok-secret-1"
    );
    // When the configuration is broken, which outputs are sensitive is unknown: all redacted.
    std::fs::write(ws.dir.join("main.ncl"), "{ servers = ").unwrap();
    ws.prov(&["output"])
        .ok()
        .lacks("secret")
        .lacks("data")
        .has("which outputs are sensitive is unknown");
    ws.write(cfg);
    ws.prov(&["drift", "--json"]).ok().lacks("secret");
    // The real values were applied.
    let pulled: serde_json::Value =
        serde_json::from_str(&ws.prov(&["state", "pull"]).ok().stdout).unwrap();
    let tags = |addr: &str| {
        pulled["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["record"]["address"] == addr)
            .unwrap()["record"]["attributes"]["tags"]
            .clone()
    };
    assert_eq!(tags("server.web")["auth"], "Bearer tok-secret-1");
    assert_eq!(tags("server.app")["again"], "tok-secret-1");
    assert_eq!(tags("server.app")["whole"], "data");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}
