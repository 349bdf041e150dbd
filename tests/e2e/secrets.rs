//! Secrets never appear in any command's output: one matrix over every subcommand (text and
//! `--json`, success and error paths) with known secret markers in a provider credential, a
//! server tag, a taskserv setting, an output and a reference chain. Only `prov output NAME` and
//! `prov state pull` (asking for the value, the full backup) may print them.

use super::*;

/// Every secret below contains it; nothing else in the workspace does.
const MARK: &str = "ZSEC";

const CFG: &str = r#"{
  providers = { sim = { auth = { method = 'api_key, api_key = "ZSEC-cred-41" } } },
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           tags = { token = "ZSEC-tag-52", team = "data" }, sensitive = ["tags.token"],
           taskservs = { pg = { version = "1.0.0", settings = { user = "app", password = "ZSEC-set-63" },
                                sensitive = ["settings.password"] } } },
    web = { provider = "sim", plan = "small", zone = "sim-a",
            tags = { auth = "Bearer ${server.db.tags.token}", team = "${server.db.tags.team}" } },
    app = { provider = "sim", plan = "small", zone = "sim-a",
            tags = { again = "${server.web.tags.auth}" } },
  },
  outputs = { chain = "${server.app.tags.again}", pw = "${taskserv.db.pg.settings.password}",
              team = "${server.db.tags.team}" },
}"#;

/// Runs commands and checks each one's output for the markers.
struct Matrix<'a> {
    ws: &'a Ws,
    ran: Vec<String>,
}

impl Matrix<'_> {
    /// Runs `args` (and, with `json`, again with `--json`), expecting exit `code`; no marker may
    /// appear on stdout or stderr.
    fn run(&mut self, args: &[&str], code: i32, json: bool) -> Run {
        self.run_env(args, &[], code, json)
    }

    fn run_env(&mut self, args: &[&str], env: &[(&str, &str)], code: i32, json: bool) -> Run {
        let r = self.one(args, env, code);
        if json {
            let mut j = args.to_vec();
            j.push("--json");
            self.one(&j, env, code);
        }
        r
    }

    fn one(&mut self, args: &[&str], env: &[(&str, &str)], code: i32) -> Run {
        let r = self.ws.prov_env(args, env);
        let what = format!("prov {}", args.join(" "));
        assert_eq!(
            r.code, code,
            "{what}: expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            r.stdout, r.stderr
        );
        for (name, out) in [("stdout", &r.stdout), ("stderr", &r.stderr)] {
            if let Some(at) = out.find(MARK) {
                let line = out[..at].lines().count().max(1);
                panic!("{what}: a secret on {name} line {line}:\n{out}");
            }
        }
        self.ran.push(what);
        r
    }
}

#[test]
fn no_command_prints_a_secret_except_output_name_and_state_pull() {
    let ws = Ws::new(CFG);
    let mut m = Matrix {
        ws: &ws,
        ran: Vec::new(),
    };
    // Before anything exists.
    m.run(&["validate"], 0, true);
    m.run(&["graph"], 0, false);
    m.run(&["plan"], 0, true);
    m.run(&["plan", "--out", "p.plan"], 0, false)
        .has("(sensitive value)")
        .lacks("\"(sensitive value)\"");
    m.run(&["show", "p.plan"], 0, true);
    m.run(&["show", "--format", "markdown", "p.plan"], 0, false)
        .has("(sensitive value)")
        .lacks("\"(sensitive value)\"");
    m.run(&["show"], 0, true);
    m.run(&["output"], 0, true);
    m.run(&["state", "list"], 0, false);
    m.run(&["server", "list"], 0, true);
    m.run(&["taskserv", "list"], 0, true);
    m.run(&["drift"], 0, true);

    // A failing apply: app cannot be created (its tag holds the chain's secret).
    m.run_env(
        &["apply", "--auto-approve"],
        &[("PROV_SIM_FAIL_SERVERS", "app")],
        1,
        false,
    );
    m.run_env(
        &["apply", "--auto-approve", "--json"],
        &[("PROV_SIM_FAIL_SERVERS", "app")],
        1,
        false,
    );
    // The saved plan is stale now: refused.
    m.run(&["apply", "p.plan"], 1, false);
    m.run(&["plan", "--out", "p.plan"], 0, false);
    m.run(&["apply", "p.plan"], 0, false)
        .has("chain = (sensitive value)")
        .has("pw = (sensitive value)")
        .has(r#"team = "data""#);
    m.run(&["plan", "--detailed-exitcode"], 0, false);
    m.run(&["apply", "--auto-approve"], 0, true);

    // Everything exists: every reading command.
    m.run(&["validate"], 0, true);
    m.run(&["graph"], 0, false);
    m.run(&["plan"], 0, true);
    m.run(&["plan", "--refresh-only"], 0, true);
    m.run(&["plan", "--destroy"], 0, true);
    m.run(&["plan", "--untrusted"], 0, true);
    m.run(&["show"], 0, true);
    m.run(&["state", "list"], 0, false);
    // Policies see the redacted plan: a rule that prints every tag prints no secret.
    std::fs::create_dir_all(ws.dir.join("policy")).unwrap();
    std::fs::write(
        ws.dir.join("policy/tags.rego"),
        "package main\n\nimport rego.v1\n\nwarn contains msg if {\n\trc := input.resource_changes[_]\n\tmsg := sprintf(\"%s %v %v\", [rc.address, rc.change.before, input.prior_state])\n}\n",
    )
    .unwrap();
    m.run(&["plan", "--out", "p.plan"], 0, false);
    m.run(&["policy", "check", "p.plan"], 0, true);
    for a in ["server.db", "server.web", "server.app", "taskserv.db.pg"] {
        m.run(&["state", "show", a], 0, true);
        m.run(&["state", "history", a], 0, true);
    }
    m.run(&["output"], 0, true);
    m.run(&["output", "team"], 0, true);
    m.run(&["output", "nope"], 1, true);
    m.run(&["refresh"], 0, false);
    m.run(&["drift"], 0, true);
    m.run(&["server", "list"], 0, true);
    for verb in ["info", "stop", "start", "reboot"] {
        m.run(&["server", verb, "db"], 0, true);
        m.run(&["server", verb, "app"], 0, true);
    }
    // sim addresses are in a documentation range: an error naming the server.
    m.run(&["server", "ssh", "db", "--print"], 1, false);
    m.run(&["server", "info", "nope"], 1, true);
    for q in ["info", "plans", "zones", "pricing", "test"] {
        m.run(&["provider", q, "sim"], 0, true);
    }
    for q in ["status", "versions", "check-updates", "restart"] {
        m.run(&["taskserv", q], 0, true);
        m.run(&["taskserv", q, "taskserv.db.pg"], 0, true);
    }
    m.run(&["sim", "list"], 0, false);

    // The secret changes outside prov: reported as changed, never shown.
    m.run(
        &["sim", "set", "db", "tags.token", "ZSEC-tag-drift"],
        0,
        false,
    );
    m.run(&["drift"], 2, false)
        .has("tags.token = (sensitive value changed)");
    m.run(&["drift"], 2, true);
    let ignore = ws.dir.join("ignore.json");
    std::fs::write(
        &ignore,
        r#"[{"address": "server.db", "attribute": "tags.token", "reason": "rotated"}]"#,
    )
    .unwrap();
    m.run(&["drift", "--ignore", "ignore.json"], 0, true);
    m.run(&["server", "info", "db"], 0, true)
        .has("(sensitive value)");
    m.run(&["plan"], 0, true)
        .has("tags.token = (sensitive value changed)");
    m.run(&["plan", "--format", "markdown"], 0, false)
        .has("tags.token = (sensitive value changed)");
    m.run(&["plan", "--refresh-only"], 0, true)
        .has("tags.token = (sensitive value changed)");
    m.run(&["apply", "--refresh-only", "--auto-approve"], 0, false)
        .has("tags.token = (sensitive value changed)")
        .has("chain = (sensitive value)");
    m.run(&["state", "show", "server.db"], 0, true);
    m.run(&["state", "history", "server.db"], 0, true);
    // Back to the configured value.
    m.run(&["apply", "--auto-approve"], 0, false)
        .has("tags.token = (sensitive value changed)");

    // The configuration's secrets change: plans say so without showing them.
    ws.write(
        &CFG.replace("ZSEC-tag-52", "ZSEC-tag-2nd")
            .replace("ZSEC-set-63", "ZSEC-set-2nd"),
    );
    m.run(&["plan"], 0, true)
        .has("tags.token = (sensitive value changed)")
        .has("settings.password = (sensitive value changed)")
        .has("chain = (sensitive value changed)");
    m.run(&["plan", "--format", "markdown"], 0, false)
        .has("settings.password = (sensitive value changed)");
    // A failing update of the secret holder and of what refers to it.
    m.run_env(
        &["apply", "--auto-approve"],
        &[("PROV_SIM_FAIL_SERVERS", "db,web,app")],
        1,
        true,
    );
    m.run(&["apply", "--auto-approve"], 0, false);

    // Import and state edits write records that keep their sensitive paths.
    let id = ws
        .prov(&["sim", "list"])
        .ok()
        .stdout
        .lines()
        .find(|l| l.split_whitespace().any(|w| w == "db"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no db in sim list"))
        .to_string();
    m.run(&["state", "rm", "server.db"], 0, false);
    m.run(&["import", "server.db", &id], 0, false);
    m.run(&["state", "show", "server.db"], 0, true)
        .has("(sensitive value)");
    m.run(&["show"], 0, true);
    m.run(&["import", "server.db", &id], 1, false);
    m.run(&["import", "server.nope", "sim-0"], 1, false);
    // server.app2 is not declared: refused, then moved there and back with --force.
    m.run(&["state", "mv", "server.app", "server.app2"], 1, false);
    m.run(
        &["state", "mv", "server.app", "server.app2", "--force"],
        0,
        false,
    );
    m.run(&["state", "show", "server.app2"], 0, true);
    m.run(&["state", "mv", "server.app2", "server.app"], 0, false);
    m.run(&["state", "show", "server.nope"], 1, true);
    m.run(&["state", "pull", "--out", "backup.json"], 0, false);
    m.run(&["state", "push", "backup.json"], 0, false);
    m.run(&["force-unlock", "no-such-lock"], 1, false);

    // The values themselves: asked for by name, or the full backup.
    assert!(ws
        .prov(&["output", "chain"])
        .ok()
        .stdout
        .contains("ZSEC-tag-2nd"));
    assert!(ws
        .prov(&["output", "pw"])
        .ok()
        .stdout
        .contains("ZSEC-set-2nd"));
    let pulled = ws.prov(&["state", "pull"]).ok().stdout;
    for s in ["ZSEC-tag-2nd", "ZSEC-set-2nd", "Bearer ZSEC-tag-2nd"] {
        assert!(pulled.contains(s), "state pull keeps {s}");
    }

    // A broken configuration: errors do not quote the secrets either.
    ws.write(&CFG.replace(
        r#"plan = "small", zone = "sim-a",
           tags = { token"#,
        r#"plan = 5, zone = "sim-a",
           tags = { token"#,
    ));
    for args in [
        &["validate"][..],
        &["plan"],
        &["apply", "--auto-approve"],
        &["drift"],
        &["graph"],
    ] {
        m.run(args, 1, false);
    }
    m.run(&["output"], 0, true);
    m.run(&["show"], 0, true);
    ws.write(&CFG.replace(
        "Bearer ${server.db.tags.token}",
        "Bearer ${server.db.tags.token} ${server.ghost.private_ip}",
    ));
    m.run(&["validate"], 1, false);
    m.run(&["plan"], 1, false);

    // Destroy, then what is left.
    ws.write(
        &CFG.replace("ZSEC-tag-52", "ZSEC-tag-2nd")
            .replace("ZSEC-set-63", "ZSEC-set-2nd"),
    );
    m.run(&["plan", "--destroy"], 0, false);
    m.run(
        &["destroy", "--auto-approve", "--target", "server.app"],
        0,
        true,
    );
    m.run(&["destroy", "--auto-approve"], 0, true);
    m.run(&["show"], 0, true);
    m.run(&["state", "history", "server.db"], 0, true);
    eprintln!("{} commands checked", m.ran.len());
}

/// Crash adoption: a create whose record was never written is adopted by `prov refresh` with
/// the sensitive paths it was planned with.
#[test]
fn a_crashed_create_is_adopted_with_its_secrets_hidden() {
    let ws = Ws::new(
        r#"{ servers = { db = { provider = "sim", plan = "small", zone = "sim-a",
             tags = { token = "ZSEC-crash-1" }, sensitive = ["tags.token"] } } }"#,
    );
    let mut child = spawn(
        &ws.dir,
        &["apply", "--auto-approve"],
        &[("PROV_SIM_LATENCY_MS", "20000")],
    );
    // The pending note is written before "creating" is printed; the create call then waits.
    let out = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(out));
    loop {
        let l = lines.next().expect("apply ended before creating").unwrap();
        if l.contains("server.db: creating") {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // The create went through just before the kill: the server carries the ownership tags.
    ws.prov(&["sim", "add-unmanaged", "db"]).ok();
    ws.prov(&["sim", "set", "db", "tags.prov:address", "server.db"])
        .ok();
    ws.prov(&["state", "list"]).ok().has("pending: server.db");
    ws.prov(&["refresh"]).ok().lacks(MARK);
    ws.prov(&["state", "show", "server.db"])
        .ok()
        .lacks(MARK)
        .has("(sensitive value)");
    ws.prov(&["state", "show", "server.db", "--json"])
        .ok()
        .lacks(MARK);
    ws.prov(&["show", "--json"]).ok().lacks(MARK);
    assert!(ws
        .prov(&["state", "pull"])
        .ok()
        .stdout
        .contains("ZSEC-crash-1"));
}
