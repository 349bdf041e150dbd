//! The nesting limit end to end: taskserv settings nested too deeply are refused by validate,
//! plan and apply before anything is written; settings at the limit are applied and read back
//! by every command; a state an older prov wrote deeper than serde_json reads by default (every
//! command used to fail on it with "recursion limit exceeded") is read, backed up, repaired.

use super::*;

/// A sim server `db` whose taskserv `redis` has `settings.deep` nested `levels` levels deep.
/// The configuration's own levels above it: top, servers, db, taskservs, redis, settings (6).
fn deep_settings(levels: usize, leaf: &str) -> String {
    format!(
        r#"
{{
  servers = {{
    db = {{ provider = "sim", plan = "small", zone = "sim-a",
           taskservs = {{ redis = {{ version = "1.0.0",
             settings = {{ maxmemory = "64mb", deep = {}"{leaf}"{} }} }} }} }},
  }},
}}
"#,
        "{ a = ".repeat(levels),
        " }".repeat(levels)
    )
}

/// The workspace's sled state, opened directly. sled lets go of its file lock only once its
/// background threads have let go of the database after a drop, so an open right after this
/// test dropped its previous one waits for that (seen on a slow machine: "could not acquire
/// lock ... WouldBlock"); without the periodic flusher there is one thread fewer to wait for.
fn sled_tree(ws: &Ws) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let opened = sled::Config::new()
            .path(ws.dir.join(".prov/state"))
            .flush_every_ms(None)
            .open();
        match opened {
            Ok(db) => return db,
            Err(e)
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening the sled state: {e}"),
        }
    }
}

#[test]
fn settings_too_deep_are_refused_and_settings_at_the_limit_read_back_everywhere() {
    let max = prov_state::MAX_VALUE_DEPTH;
    // The reported case: settings ~124 levels deep. Refused by every command that loads the
    // configuration, naming the file, line and field; nothing written.
    let ws = Ws::new(&deep_settings(124, "x"));
    for cmd in [&["validate"][..], &["plan"], &["apply", "--auto-approve"]] {
        ws.prov(cmd)
            .code(1)
            .has("main.ncl:")
            .has("configuration nested too deeply at servers.db.taskservs.redis.settings.deep.a")
            .has("130 levels of records and arrays")
            .has(&format!("more than the limit of {max}"));
    }
    assert!(!ws.dir.join(".prov/state").exists(), "nothing was written");
    // One level over the limit is refused too.
    ws.write(&deep_settings(max - 6 + 1, "x"));
    ws.prov(&["validate"]).code(1).has("nested too deeply");

    // At the limit: applied, and every command reads it back.
    ws.write(&deep_settings(max - 6, "x"));
    ws.prov(&["validate"]).ok();
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    ws.prov(&["state", "list"]).ok().has("taskserv.db.redis");
    ws.prov(&["state", "show", "taskserv.db.redis", "--json"])
        .ok()
        .has("\"deep\"");
    ws.prov(&["show", "--json"]).ok().has("\"deep\"");
    ws.prov(&["drift"]).ok();
    // A saved plan carrying the deep settings (before and after) reads back and applies.
    ws.write(&deep_settings(max - 6, "y"));
    ws.prov(&["plan", "--out", "deep.plan"]).ok();
    ws.prov(&["apply", "deep.plan"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    // Backup and restore through a dump.
    ws.prov(&["state", "pull", "--out", "backup.json"]).ok();
    ws.prov(&["state", "rm", "taskserv.db.redis"]).ok();
    ws.prov(&["state", "history", "taskserv.db.redis"])
        .ok()
        .has("delete");
    ws.prov(&["state", "push", "backup.json", "--force"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
}

/// Makes the stored record of `taskserv.db.redis` what an older prov wrote from
/// `deep_settings(124, ..)`: deeper than serde_json reads by default.
fn damage_like_an_older_prov(ws: &Ws) {
    let db = sled_tree(ws);
    let records = db.open_tree("records").unwrap();
    let raw = records.get("taskserv.db.redis").unwrap().unwrap();
    let mut env: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let mut deep = serde_json::json!("x");
    for _ in 0..124 {
        deep = serde_json::json!({ "a": deep });
    }
    let mut replaced = 0;
    for field in ["config", "attributes"] {
        if let Some(settings) = env["record"][field].get_mut("settings") {
            settings["deep"] = deep.clone();
            replaced += 1;
        }
    }
    assert!(replaced > 0, "the record keeps its settings: {env}");
    let text = serde_json::to_vec(&env).unwrap();
    assert!(
        serde_json::from_slice::<serde_json::Value>(&text).is_err(),
        "deeper than serde_json reads by default"
    );
    records.insert("taskserv.db.redis", text).unwrap();
    db.flush().unwrap();
}

/// A state an older prov wrote with settings 124 levels deep (it had no limit): before this fix
/// every command failed on it with "sled state is corrupt (recursion limit exceeded)". Now it is
/// listed, shown and backed up; once the configuration is fixed the next apply rewrites the
/// record within the limit; or the record is removed with `state rm`.
#[test]
fn a_state_an_older_prov_wrote_too_deep_is_read_backed_up_and_repaired() {
    let ws = Ws::new(&deep_settings(10, "x"));
    ws.prov(&["apply", "--auto-approve"]).ok();
    damage_like_an_older_prov(&ws);
    ws.write(&deep_settings(124, "x"));

    // The configuration is refused with a clear message; the state is read by every command.
    ws.prov(&["validate"]).code(1).has("nested too deeply");
    ws.prov(&["state", "list"]).ok().has("taskserv.db.redis");
    ws.prov(&["state", "show", "taskserv.db.redis", "--json"])
        .ok()
        .has("\"deep\"");
    ws.prov(&["show", "--json"]).ok().has("taskserv.db.redis");
    ws.prov(&["state", "pull", "--out", "backup.json"]).ok();
    let backup = std::fs::read_to_string(ws.dir.join("backup.json")).unwrap();
    assert!(backup.contains("\"taskserv.db.redis\""), "{backup}");

    // Fixed configuration: the plan updates the record, apply rewrites it within the limit.
    ws.write(&deep_settings(10, "x"));
    ws.prov(&["plan"]).ok().has("taskserv.db.redis");
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.prov(&["plan", "--detailed-exitcode"]).ok();
    let db = sled_tree(&ws);
    let raw = db
        .open_tree("records")
        .unwrap()
        .get("taskserv.db.redis")
        .unwrap()
        .unwrap();
    drop(db);
    assert!(serde_json::from_slice::<serde_json::Value>(&raw).is_ok());

    // Or: `state rm` removes such a record; its history keeps it; the backup holding it is not
    // pushed back as it is (the state would store what it cannot read), naming the record.
    damage_like_an_older_prov(&ws);
    ws.prov(&["state", "rm", "taskserv.db.redis"])
        .ok()
        .has("Removed taskserv.db.redis");
    ws.prov(&["state", "history", "taskserv.db.redis", "--json"])
        .ok()
        .has("\"deep\"");
    ws.prov(&["state", "push", "backup.json", "--force"])
        .code(1)
        .has("\"taskserv.db.redis\" cannot be stored");
    ws.prov(&["state", "list"]).ok().lacks("taskserv.db.redis");
}
