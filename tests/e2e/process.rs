//! The machine and the process: closed stdout, evaluation limits, nonsense flags, a PostgreSQL
//! server that never answers. Each case once panicked, hung or took the machine down.

use super::{command, many_servers, Ws, TWO_SERVERS};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A stdout whose reader is already gone: every write fails with EPIPE.
fn closed_stdout() -> Stdio {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer.into()
}

/// Runs prov with its stdout closed: (exit code, stderr).
fn prov_closed(ws: &Ws, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = command(&ws.dir, args, env)
        .stdout(closed_stdout())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Every subcommand, stdout closed: no panic, and the exit code it has with a reader.
#[test]
fn closed_stdout_never_panics_and_keeps_the_exit_code() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let cases: &[&[&str]] = &[
        &["--help"],
        &["--version"],
        &["validate"],
        &["validate", "--json"],
        &["plan"],
        &["plan", "--json"],
        &[
            "plan",
            "--refresh=false",
            "--destroy",
            "--detailed-exitcode",
        ],
        &["plan", "--out", "saved.plan"],
        &["show"],
        &["show", "--json"],
        &["show", "saved.plan"],
        &["show", "saved.plan", "--json"],
        &["graph"],
        &["state", "list"],
        &["state", "show", "server.web"],
        &["state", "show", "server.web", "--json"],
        &["state", "pull"],
        &["state", "history", "server.web"],
        &["state", "history", "server.web", "--json"],
        &["output"],
        &["output", "--json"],
        &["output", "web_ip"],
        &["drift"],
        &["drift", "--json"],
        &["refresh"],
        &["sim", "list"],
        &["server", "list"],
        &["server", "list", "--json"],
        &["server", "info", "web"],
        &["server", "ssh", "web", "--print"],
        &["provider", "info", "sim"],
        &["provider", "plans", "sim"],
        &["provider", "zones", "sim"],
        &["provider", "pricing", "sim"],
        &["provider", "test", "sim"],
        &["taskserv", "list"],
        &["taskserv", "list", "--json"],
        &["taskserv", "status"],
        &["taskserv", "versions"],
        &["taskserv", "check-updates", "--json"],
        &["taskserv", "restart"],
        &["state", "show", "server.nope"],
        &["apply", "--auto-approve"],
        &["apply", "saved.plan"],
    ];
    for args in cases {
        let with_reader = ws.prov(args);
        let (code, stderr) = prov_closed(&ws, args, &[]);
        assert!(
            !stderr.contains("panicked") && code != 101,
            "prov {args:?} with stdout closed: exit {code}\n{stderr}"
        );
        // A saved plan is stale once applied; the other runs see the same world.
        if args != &["apply", "saved.plan"] {
            assert_eq!(
                code, with_reader.code,
                "prov {args:?}: exit {code} with stdout closed, {} with a reader\n{stderr}",
                with_reader.code
            );
        }
    }
}

/// An apply whose reader went away finishes every step and records it (text and JSON lines).
#[test]
fn apply_with_closed_stdout_finishes_and_records_everything() {
    for json in [false, true] {
        let ws = Ws::new(&many_servers(24));
        let mut args = vec!["apply", "--auto-approve", "--parallelism", "4"];
        if json {
            args.push("--json");
        }
        let (code, stderr) = prov_closed(&ws, &args, &[("PROV_SIM_LATENCY_MS", "20")]);
        assert_eq!(code, 0, "json={json}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let listed = ws.prov(&["state", "list"]).ok();
        assert_eq!(listed.stdout.lines().count(), 24, "{}", listed.stdout);
        assert!(!listed.stderr.contains("pending"), "{}", listed.stderr);
        ws.prov(&["plan", "--detailed-exitcode"]).code(0);
        // Destroy the same way: nothing left behind.
        let (code, stderr) = prov_closed(&ws, &["destroy", "--auto-approve"], &[]);
        assert_eq!(code, 0, "{stderr}");
        assert_eq!(ws.prov(&["state", "list"]).ok().stdout, "");
        assert_eq!(ws.prov(&["sim", "list"]).ok().stdout, "");
    }
}

/// The issue's configuration that never stops allocating (slowly: ~15 MB/s in a debug build).
const RUNAWAY: &str = r#"
let rec f = fun x => f x in
{ servers = {}, outputs = { loop = f 1 } }
"#;

/// One that doubles an array until the memory is gone: reaches any limit in a moment.
const RUNAWAY_FAST: &str = r#"
let rec f = fun x => if std.array.length x > 0 then f (x @ x) else x in
{ servers = {}, outputs = { loop = std.string.from_number (std.array.length (f [1])) } }
"#;

/// Evaluation under a small memory limit: every evaluating command ends with exit 1 and the
/// limit named, quickly, and the state is untouched.
#[test]
fn runaway_evaluation_stops_at_the_memory_limit() {
    let ws = Ws::new(TWO_SERVERS);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let before = ws
        .prov(&["--backend", "sled", "show", "--json"])
        .ok()
        .stdout;
    ws.write(RUNAWAY);
    ws.prov_env(&["validate"], &[("PROV_EVAL_MEMORY_LIMIT", "200MiB")])
        .code(1)
        .has("exceeded the memory limit of 200 MiB")
        .lacks("panicked");
    ws.write(RUNAWAY_FAST);
    let env = [
        ("PROV_EVAL_MEMORY_LIMIT", "300MiB"),
        ("PROV_EVAL_TIME_LIMIT", "120s"),
    ];
    let commands: &[&[&str]] = &[
        &["validate"],
        &["plan"],
        &["apply", "--auto-approve"],
        &["destroy", "--auto-approve"],
        &["graph"],
        &["drift"],
        &["refresh"],
        &["output"],
        &["import", "server.web", "sim-x"],
        &["state", "list"],
        &["server", "list"],
        &["taskserv", "status"],
    ];
    for args in commands {
        let started = Instant::now();
        ws.prov_env(args, &env)
            .code(1)
            .has("exceeded the memory limit of 300 MiB")
            .has("PROV_EVAL_MEMORY_LIMIT")
            .lacks("panicked");
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prov {args:?} took {:?}",
            started.elapsed()
        );
    }
    // The flag wins over the variable.
    ws.prov_env(&["--eval-memory-limit", "200MiB", "validate"], &env)
        .code(1)
        .has("memory limit of 200 MiB");
    // `show` evaluates the configuration too (to redact): compare under the original one.
    ws.write(TWO_SERVERS);
    let after = ws
        .prov(&["--backend", "sled", "show", "--json"])
        .ok()
        .stdout;
    assert_eq!(before, after);
}

/// A loop that runs without allocating ends at the time limit.
#[test]
fn endless_evaluation_stops_at_the_time_limit() {
    let ws = Ws::new(
        r#"
let rec count = fun n => if n == 0 then 0 else count (n - 1) in
{ servers = {}, outputs = { n = std.string.from_number (count 1000000000000) } }
"#,
    );
    let started = Instant::now();
    // The memory limit only guards the machine should the loop allocate after all.
    ws.prov(&[
        "--eval-time-limit",
        "2s",
        "--eval-memory-limit",
        "1GiB",
        "validate",
    ])
    .code(1)
    .has("exceeded the time limit of 2s")
    .has("--eval-time-limit");
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// Flags and variables with nonsense values: a usage error naming the value, exit 1.
#[test]
fn nonsense_numbers_and_durations_are_usage_errors() {
    let ws = Ws::new(TWO_SERVERS);
    let cases: &[(&[&str], &str)] = &[
        (
            &["state", "list", "--lock-timeout", "99999999999999999999h"],
            "invalid duration",
        ),
        (&["plan", "--lock-timeout=-5s"], "invalid duration"),
        (&["apply", "--parallelism", "0"], "invalid number"),
        (&["destroy", "--parallelism", "0"], "invalid number"),
        (
            &["apply", "--parallelism", "99999999999999999999"],
            "invalid number",
        ),
        (&["plan", "--refresh-parallelism", "0"], "invalid number"),
        (&["drift", "--refresh-parallelism", "0"], "invalid number"),
        (
            &["drift", "--call-timeout", "0s"],
            "must be longer than zero",
        ),
        (&["drift", "--call-timeout", "1e400s"], "invalid duration"),
        (
            &["server", "ssh", "web", "--connect-timeout", "0"],
            "1..=86400",
        ),
        (&["--eval-memory-limit", "1KiB", "validate"], "invalid size"),
        (
            &["--eval-time-limit", "0s", "validate"],
            "must be longer than zero",
        ),
    ];
    for (args, expect) in cases {
        ws.prov(args).code(1).has(expect).lacks("panicked");
    }
    ws.prov_env(&["validate"], &[("PROV_EVAL_TIME_LIMIT", "forever")])
        .code(1)
        .has("invalid duration");
    ws.prov_env(&["plan"], &[("PROV_SIM_LATENCY_MS", "1e300")])
        .code(1)
        .has("PROV_SIM_LATENCY_MS")
        .lacks("panicked");
}

/// A "PostgreSQL" port that accepts TCP and never answers: a clear error in bounded time,
/// naming the server and not the password.
#[test]
fn postgresql_port_that_never_answers_is_an_error_not_a_hang() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    let ws = Ws::new(TWO_SERVERS);
    let conn = format!(
        "host=127.0.0.1 port={port} user=prov password=hunter2secret dbname=silent connect_timeout=2"
    );
    let started = Instant::now();
    ws.prov_env(
        &["--backend", "pg", "state", "list"],
        &[("PROV_PG_CONN", conn.as_str())],
    )
    .code(1)
    .has(&format!("127.0.0.1:{port}/silent"))
    .has("connect_timeout")
    .lacks("hunter2secret");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

/// A command asked for JSON that fails prints its error as one JSON object on stdout (and the
/// text on stderr), for every command with `--json` or `--format json`; without it stdout is
/// empty. Before, pipelines piping `--json` into `jq` got a parse error instead of the reason.
#[test]
fn errors_of_json_commands_are_json_on_stdout() {
    let ws = Ws::new(r#"{ servers = { a = { provider = "nowhere", plan = "p", zone = "z" } } }"#);
    for args in [
        &["plan", "--json"][..],
        &["plan", "--format", "json"],
        &["plan", "--format=json"],
        &["validate", "--json"],
        &["apply", "--auto-approve", "--json"],
        &["destroy", "--auto-approve", "--json"],
        &["drift", "--json"],
        &["taskserv", "status", "--json"],
        &["cluster", "status", "--json"],
    ] {
        let r = ws.prov(args).code(1);
        let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "{args:?}: stdout is not one JSON object ({e}):\n{}",
                r.stdout
            )
        });
        let msg = v["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains("nowhere"), "{args:?}: {v}");
        // The message itself: `error:` labels are the text's.
        assert!(!msg.contains("error: "), "{args:?}: {v}");
        assert!(r.stderr.contains("nowhere"), "{args:?}: {}", r.stderr);
    }
    // Each diagnostic is its own error line in the text, and its own line in the JSON.
    let two = Ws::new(
        r#"{ servers = { a = { provider = "nowhere", plan = "p", zone = "z" }, b = { provider = "elsewhere", plan = "p", zone = "z" } } }"#,
    );
    let r = two.prov(&["plan", "--json"]).code(1);
    let lines: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert!(
        lines.len() == 2 && lines[0].contains("server.a") && lines[1].contains("server.b"),
        "{}",
        r.stderr
    );
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("server.a") && msg.contains("\nserver.b"),
        "{v}"
    );
    for args in [
        &["plan"][..],
        &["validate"],
        &["plan", "--format", "markdown"],
    ] {
        let r = ws.prov(args).code(1);
        assert!(r.stdout.is_empty(), "{args:?}: {}", r.stdout);
    }
    // An error before the command runs (no such directory) too.
    let r = ws
        .prov(&["-C", "/nonexistent-dir", "plan", "--json"])
        .code(1);
    let v: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/nonexistent-dir"));
}
