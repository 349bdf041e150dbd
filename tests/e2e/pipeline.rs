//! Pipelines as a team runs them: apply of exactly the reviewed plan (`--expect-plan`), plan files and state dumps encrypted at rest, and the saved-plan hint run verbatim.

use super::*;

const KEY1: &str = "first-key-0123456789abcdef";
const KEY2: &str = "second-key-0123456789abcdef";
/// Every secret below contains it; nothing else in the workspace does.
const MARK: &str = "ZSEC";

const CFG: &str = r#"{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           taskservs = { pg = { version = "1.0.0", settings = { user = "app", password = "ZSEC-pw-1" },
                                sensitive = ["settings.password"] } } },
    web = { provider = "sim", plan = "small", zone = "sim-a",
            tags = { db = "${server.db.private_ip}" } },
  },
  outputs = { web_ip = "${server.web.public_ip}" },
}"#;

fn key(k: &str) -> [(&str, &str); 1] {
    [("PROV_ENCRYPTION_KEY", k)]
}

/// `prov plan --json` as a reviewer saw it, saved to `name` in the workspace.
fn review(ws: &Ws, name: &str, env: &[(&str, &str)]) -> String {
    let r = ws.prov_env(&["plan", "--json"], env).ok();
    std::fs::write(ws.dir.join(name), &r.stdout).unwrap();
    r.stdout
}

/// What an apply could have changed: the state (unredacted; its lineage aside, which an apply
/// gives a state that did not exist yet) and the simulated world.
fn world(ws: &Ws) -> (String, String) {
    let state: String = ws
        .pulled()
        .lines()
        .filter(|l| !l.contains("\"lineage\""))
        .collect();
    (state, ws.prov(&["sim", "list"]).ok().stdout)
}

#[test]
fn expect_plan_applies_a_matching_plan_and_refuses_a_changed_config() {
    let ws = Ws::new(CFG);
    let json = review(&ws, "reviewed.json", &key(KEY1));
    assert!(!json.contains(MARK), "plan JSON shows a secret:\n{json}");
    assert!(json.contains("(sensitive value, hmac "), "{json}");

    // The configuration changed after the review: refused, the difference named, nothing done.
    ws.write(&CFG.replace(
        r#"web = { provider = "sim", plan = "small""#,
        r#"web = { provider = "sim", plan = "medium""#,
    ));
    let before = world(&ws);
    ws.prov_env(&["apply", "--expect-plan", "reviewed.json"], &key(KEY1))
        .code(1)
        .has("differs from the reviewed plan reviewed.json")
        .has(r#"server.web: after.plan: reviewed "small", now "medium""#)
        .has("nothing was applied")
        .lacks(MARK);
    assert_eq!(world(&ws), before, "a refused apply changed something");

    // Back to what was reviewed: applied without a prompt (the review approved it).
    ws.write(CFG);
    ws.prov_env(&["apply", "--expect-plan", "reviewed.json"], &key(KEY1))
        .ok()
        .has("Apply complete: 3 succeeded");
    ws.prov(&["plan", "--detailed-exitcode"]).ok();

    // Another apply of the same review: the plan is now "no changes", which is not what was
    // reviewed.
    ws.prov_env(&["apply", "--expect-plan", "reviewed.json"], &key(KEY1))
        .code(1)
        .has("server.web: reviewed create; now nothing to do");
}

#[test]
fn expect_plan_refuses_a_changed_state_or_world() {
    let ws = Ws::new(CFG);
    review(&ws, "reviewed.json", &key(KEY1));
    // Someone applied part of it in between: the state moved.
    ws.prov(&["apply", "--auto-approve", "--target", "server.db"])
        .ok();
    let before = world(&ws);
    ws.prov_env(&["apply", "--expect-plan", "reviewed.json"], &key(KEY1))
        .code(1)
        .has("server.db: reviewed create; now nothing to do")
        .has("server.web: after.tags.db: reviewed null, now")
        .lacks(MARK);
    assert_eq!(world(&ws), before);

    // Reviewed an update; the server changed outside prov before the apply.
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(&CFG.replace(
        r#"web = { provider = "sim", plan = "small""#,
        r#"web = { provider = "sim", plan = "medium""#,
    ));
    review(&ws, "update.json", &key(KEY1));
    ws.prov(&["sim", "set", "web", "plan", "large"]).ok();
    let before = world(&ws);
    ws.prov_env(&["apply", "--expect-plan", "update.json"], &key(KEY1))
        .code(1)
        .has(r#"server.web: before.plan: reviewed "small", now "large""#);
    assert_eq!(world(&ws), before);
}

#[test]
fn expect_plan_compares_secrets_by_keyed_hash() {
    let ws = Ws::new(CFG);
    let reviewed = review(&ws, "reviewed.json", &key(KEY1));
    // The same secret hashes differently under another key: no hash is guessable without it.
    let other = ws.prov_env(&["plan", "--json"], &key(KEY2)).ok().stdout;
    let hashes = |s: &str| {
        s.match_indices("(sensitive value, hmac ")
            .map(|(i, _)| s[i..i + 60].to_string())
            .collect::<Vec<_>>()
    };
    assert!(!hashes(&reviewed).is_empty());
    assert!(hashes(&reviewed)
        .iter()
        .all(|h| !hashes(&other).contains(h)));

    // The password changed after the review: refused without showing either value.
    ws.write(&CFG.replace("ZSEC-pw-1", "ZSEC-pw-2"));
    let before = world(&ws);
    ws.prov_env(&["apply", "--expect-plan", "reviewed.json"], &key(KEY1))
        .code(1)
        .has("taskserv.db.pg: after.settings.password: (sensitive value) differs from the reviewed one")
        .lacks(MARK);
    assert_eq!(world(&ws), before);

    // Without the key the secrets cannot be compared: refused, saying why.
    ws.write(CFG);
    ws.prov(&["apply", "--expect-plan", "reviewed.json"])
        .code(1)
        .has("hashed with encryption key id")
        .has("nothing was applied");
    // A review made without a key cannot vouch for its secrets either.
    review(&ws, "unkeyed.json", &[]);
    ws.prov_env(&["apply", "--expect-plan", "unkeyed.json"], &key(KEY1))
        .code(1)
        .has("made without an encryption key");
    assert_eq!(world(&ws), before);

    // Key rotation between review and apply: the old key still identifies the hashes.
    ws.prov_env(
        &["apply", "--expect-plan", "reviewed.json"],
        &[
            ("PROV_ENCRYPTION_KEY", KEY2),
            ("PROV_ENCRYPTION_KEY_OLD", KEY1),
        ],
    )
    .ok()
    .has("Apply complete: 3 succeeded");
}

#[test]
fn expect_plan_takes_a_saved_plan_and_refuses_other_files() {
    let ws = Ws::new(CFG);
    ws.prov_env(&["plan", "--out", "p.bin"], &key(KEY1)).ok();
    ws.prov_env(&["show", "--json", "p.bin"], &key(KEY1))
        .ok()
        .has("\"review\"")
        .lacks(MARK);
    std::fs::write(ws.dir.join("notes.json"), "{\"hello\": 1}").unwrap();
    ws.prov_env(&["apply", "--expect-plan", "notes.json"], &key(KEY1))
        .code(1)
        .has("cannot read the reviewed plan notes.json")
        .has("prov.review");
    std::fs::write(ws.dir.join("garbage.json"), "not json").unwrap();
    ws.prov_env(&["apply", "--expect-plan", "garbage.json"], &key(KEY1))
        .code(1)
        .has("garbage.json");
    ws.prov_env(&["apply", "--expect-plan", "p.bin"], &key(KEY1))
        .ok()
        .has("Apply complete: 3 succeeded");
}

#[test]
fn saved_plans_are_encrypted_at_rest_and_read_back_with_the_key() {
    let ws = Ws::new(CFG);
    ws.prov_env(&["plan", "--out", "p.bin"], &key(KEY1)).ok();
    let raw = std::fs::read_to_string(ws.dir.join("p.bin")).unwrap();
    assert!(raw.starts_with(r#"{"format":"prov-encrypted""#), "{raw}");
    for clear in [MARK, "server.db", "small", "sim-a"] {
        assert!(
            !raw.contains(clear),
            "{clear:?} in clear in the encrypted plan"
        );
    }
    ws.prov_env(&["show", "p.bin"], &key(KEY1))
        .ok()
        .has("+ server.db");
    // No key, a wrong key: a clear error naming the file, exit 1, never "not a plan".
    ws.prov(&["show", "p.bin"])
        .code(1)
        .has("p.bin")
        .has("encrypted")
        .has("PROV_ENCRYPTION_KEY");
    ws.prov_env(&["apply", "p.bin"], &key(KEY2))
        .code(1)
        .has("p.bin")
        .has("none of the configured keys");
    assert_eq!(ws.prov(&["sim", "list"]).ok().stdout, "");
    // A modified file does not authenticate.
    std::fs::write(
        ws.dir.join("bad.bin"),
        raw.replacen("\"ciphertext\":\"", "\"ciphertext\":\"AAAA", 1),
    )
    .unwrap();
    ws.prov_env(&["show", "bad.bin"], &key(KEY1))
        .code(1)
        .has("bad.bin")
        .has("modified or truncated");
    // A key file works as the variable does; a key too short is refused.
    std::fs::write(ws.dir.join("key"), format!("{KEY1}\n")).unwrap();
    ws.prov(&["--encryption-key-file", "key", "show", "p.bin"])
        .ok()
        .has("+ server.db");
    ws.prov_env(&["show", "p.bin"], &key("short"))
        .code(1)
        .has("too short");
    // Rotation: the old key decrypts, the new one writes.
    let rotated = [
        ("PROV_ENCRYPTION_KEY", KEY2),
        ("PROV_ENCRYPTION_KEY_OLD", KEY1),
    ];
    ws.prov_env(&["show", "p.bin"], &rotated).ok();
    ws.prov_env(&["plan", "--out", "p2.bin"], &rotated).ok();
    ws.prov_env(&["show", "p2.bin"], &key(KEY1)).code(1);
    ws.prov_env(&["apply", "p.bin"], &rotated)
        .ok()
        .has("Apply complete: 3 succeeded");
    // Plain plan files stay readable with a key configured.
    ws.prov(&["plan", "--out", "plain.bin"]).ok();
    assert!(std::fs::read_to_string(ws.dir.join("plain.bin"))
        .unwrap()
        .starts_with("{\"checksum\""));
    ws.prov_env(&["show", "plain.bin"], &key(KEY1)).ok();
}

#[test]
fn state_dumps_are_encrypted_at_rest() {
    let ws = Ws::new(CFG);
    ws.prov(&["apply", "--auto-approve"]).ok();
    let plain = ws.pulled();
    assert!(
        plain.contains(MARK),
        "the unencrypted dump is the full backup"
    );
    let sealed = ws.prov_env(&["state", "pull"], &key(KEY1)).ok().stdout;
    assert!(sealed.starts_with(r#"{"format":"prov-encrypted""#));
    assert!(!sealed.contains(MARK) && !sealed.contains("server.db"));
    ws.prov_env(&["state", "pull", "--out", "dump.json"], &key(KEY1))
        .ok();
    let file = std::fs::read_to_string(ws.dir.join("dump.json")).unwrap();
    assert!(!file.contains(MARK));
    // Pushed back with the key; without it a clear error naming the file.
    ws.prov(&["state", "push", "dump.json"])
        .code(1)
        .has("dump.json")
        .has("encrypted");
    ws.prov_env(&["state", "push", "dump.json", "--force"], &key(KEY1))
        .ok()
        .has("Pushed 3 records");
    // A plan file is not a state dump, even with the right key.
    ws.prov_env(&["plan", "--out", "p.bin", "--destroy"], &key(KEY1))
        .ok();
    ws.prov_env(&["state", "push", "p.bin"], &key(KEY1))
        .code(1)
        .has("not a state dump");
    // Rotation; and a plain dump is still accepted with a key configured.
    ws.prov_env(
        &["state", "push", "dump.json", "--force"],
        &[
            ("PROV_ENCRYPTION_KEY", KEY2),
            ("PROV_ENCRYPTION_KEY_OLD", KEY1),
        ],
    )
    .ok();
    std::fs::write(ws.dir.join("plain.json"), &plain).unwrap();
    ws.prov_env(&["state", "push", "plain.json", "--force"], &key(KEY1))
        .ok();
    assert_eq!(
        ws.pulled(),
        plain.replace(&serial(&plain), &serial(&ws.pulled()))
    );
}

/// The `"serial": N` line of a dump.
fn serial(dump: &str) -> String {
    dump.lines()
        .find(|l| l.contains("\"serial\""))
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_saved_plan_hint_runs_verbatim_from_where_it_was_printed() {
    let ws = Ws::new(CFG);
    let root = ws.dir.parent().unwrap().to_path_buf();
    let infra = root.join("infra");
    std::fs::create_dir(&infra).unwrap();
    std::fs::rename(&ws.dir, infra.join("prod env")).unwrap();
    std::fs::create_dir(root.join("plans")).unwrap();
    let run_hint = |cwd: &Path, args: &[&str], env: &[(&str, &str)]| {
        let r = prov_in(cwd, args, env).ok();
        let hint = r
            .stdout
            .lines()
            .skip_while(|l| !l.contains("Apply exactly this plan with:"))
            .nth(1)
            .unwrap_or_else(|| panic!("no hint in:\n{}", r.stdout))
            .trim()
            .to_string();
        // The printed command, as a user pastes it into a shell in the same directory.
        let out = Command::new("sh")
            .arg("-c")
            .arg(&hint)
            .current_dir(cwd)
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    Path::new(env!("CARGO_BIN_EXE_prov"))
                        .parent()
                        .unwrap()
                        .display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "hint {hint:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (hint, String::from_utf8_lossy(&out.stdout).to_string())
    };
    // From the repository root, a workspace and a plan path with a space in them.
    let (hint, out) = run_hint(
        &root,
        &["plan", "infra/prod env", "--out", "plans/my plan.bin"],
        &key(KEY1),
    );
    assert_eq!(
        hint,
        "prov -C 'infra/prod env' apply '../../plans/my plan.bin'"
    );
    assert!(out.contains("Apply complete: 3 succeeded"), "{out}");
    // With -C, from a directory in between; and from inside the workspace.
    let cfg = CFG.replace(
        r#"web = { provider = "sim", plan = "small""#,
        r#"web = { provider = "sim", plan = "medium""#,
    );
    std::fs::write(infra.join("prod env/main.ncl"), &cfg).unwrap();
    let (hint, _) = run_hint(
        &root,
        &["-C", "infra", "plan", "prod env", "--out", "p.bin"],
        &[],
    );
    assert_eq!(hint, "prov -C 'infra/prod env' apply ../p.bin");
    std::fs::write(infra.join("prod env/main.ncl"), CFG).unwrap();
    let (hint, _) = run_hint(&infra.join("prod env"), &["plan", "--out", "p.bin"], &[]);
    assert_eq!(hint, "prov apply p.bin");
}

/// `prov policy check` on an encrypted saved plan: decrypted with the configured key and checked
/// (its envelope is JSON with a `format_version`, never taken for plan JSON that passes); without
/// the key, or with another, a clear error and exit 1, never a pass.
#[test]
fn policy_check_reads_encrypted_saved_plans_with_the_key() {
    let ws = Ws::new(CFG);
    std::fs::create_dir_all(ws.dir.join("policy")).unwrap();
    std::fs::write(
        ws.dir.join("policy/servers.rego"),
        r#"package main

import rego.v1

deny contains msg if {
	some rc in input.resource_changes
	rc.type == "server"
	"create" in rc.change.actions
	msg := sprintf("%s: no new servers (%v)", [rc.address, rc.change.after])
}
"#,
    )
    .unwrap();
    ws.prov_env(&["plan", "--out", "p.bin"], &key(KEY1)).ok();
    let raw = std::fs::read_to_string(ws.dir.join("p.bin")).unwrap();
    assert!(raw.starts_with(r#"{"format":"prov-encrypted""#), "{raw}");
    let r = ws
        .prov_env(&["policy", "check", "p.bin"], &key(KEY1))
        .code(1)
        .has("server.db: no new servers")
        .has("server.web: no new servers")
        .has("2 failures");
    assert!(
        !r.stdout.contains(MARK),
        "a secret in the output:\n{}",
        r.stdout
    );
    // The JSON the same plan shows is checked the same way.
    let json = ws.prov_env(&["show", "p.bin", "--json"], &key(KEY1)).ok();
    std::fs::write(ws.dir.join("p.json"), json.stdout).unwrap();
    ws.prov(&["policy", "check", "p.json"])
        .code(1)
        .has("2 failures");
    // Without the key, or with another one: an error naming the file, not a pass.
    ws.prov(&["policy", "check", "p.bin"])
        .code(1)
        .has("cannot read plan file p.bin")
        .has("PROV_ENCRYPTION_KEY");
    ws.prov_env(&["policy", "check", "p.bin"], &key(KEY2))
        .code(1)
        .has("cannot read plan file p.bin")
        .has("none of the configured keys");
    // A key file and rotation (the old key still decrypts) work as for `show` and `apply`.
    std::fs::write(ws.dir.join("key"), format!("{KEY1}\n")).unwrap();
    ws.prov(&["--encryption-key-file", "key", "policy", "check", "p.bin"])
        .code(1)
        .has("2 failures");
    ws.prov_env(
        &["policy", "check", "p.bin"],
        &[
            ("PROV_ENCRYPTION_KEY", KEY2),
            ("PROV_ENCRYPTION_KEY_OLD", KEY1),
        ],
    )
    .code(1)
    .has("2 failures");
}
