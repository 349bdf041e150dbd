//! `prov extension`: skeletons of every kind (and both provider languages) pass
//! `validate --strict` and `test` (unit and integration, on local sandboxes) unchanged; broken
//! extensions get findings naming file, line and rule; the user registry (isolated through
//! XDG_CONFIG_HOME) and the workspace registry with their precedence in `list`; a registered
//! taskserv used by a workspace; every catalog extension valid under --strict with passing unit
//! tests; plans refusing a missing script, an incompatible manifest, a version descriptor or
//! dependency validate refuses, and untrusted plans a provider registered by the workspace.

use super::*;
use serde_json::{json, Value};

/// `prov` with the user registry in `config` (never the real one).
fn prov_cfg(dir: &Path, config: &Path, args: &[&str]) -> Run {
    prov_in(
        dir,
        args,
        &[
            ("XDG_CONFIG_HOME", config.to_str().unwrap()),
            ("PROV_EXTENSIONS_PATH", ""),
        ],
    )
}

fn scratch() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let work = t.path().join("work");
    let cfg = t.path().join("config");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(&cfg).unwrap();
    (t, work, cfg)
}

/// `N passed, 0 failed` with at least `min` tests, and the integration steps listed.
fn all_passed(r: Run, steps: &[&str], min: usize) {
    let r = r.ok().has(" passed, 0 failed");
    for s in steps {
        assert!(
            r.stdout.contains("ok   integration") && r.stdout.contains(&format!(": {s} (")),
            "integration step {s} missing:\n{}",
            r.stdout
        );
    }
    let n: usize = r
        .stdout
        .lines()
        .last()
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(n >= min, "{}", r.stdout);
}

fn scaffold_passes(kind: &str, name: &str, extra: &[&str], steps: &[&str]) {
    let (_t, work, cfg) = scratch();
    let mut args = vec!["extension", "new", kind, name];
    args.extend_from_slice(extra);
    prov_cfg(&work, &cfg, &args)
        .ok()
        .has(&format!("created {kind} {name}"));
    prov_cfg(&work, &cfg, &["extension", "validate", "--strict", name])
        .ok()
        .has("valid: 0 errors, 0 warnings");
    let v: Value = serde_json::from_str(
        &prov_cfg(
            &work,
            &cfg,
            &["extension", "validate", "--strict", "--json", name],
        )
        .ok()
        .stdout,
    )
    .unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["type"], kind);
    assert_eq!(v["findings"], serde_json::json!([]));
    // The integration steps plus at least a settings case, a template or script check.
    all_passed(
        prov_cfg(&work, &cfg, &["extension", "test", name]),
        steps,
        steps.len() + 3,
    );
    // A second skeleton in the same place is refused; nothing is overwritten.
    prov_cfg(&work, &cfg, &args).code(1).has("already exists");
}

/// A step that hangs fails at `--step-timeout` instead of holding the test run; the rest are
/// reported as not run, and the run ends.
#[test]
fn a_hung_integration_step_fails_at_its_timeout() {
    let (_t, work, cfg) = scratch();
    prov_cfg(&work, &cfg, &["extension", "new", "taskserv", "stuck"]).ok();
    // Longer than the step may take, short enough that nothing lingers for long.
    std::fs::write(work.join("stuck/scripts/install.sh"), "sleep 40\n").unwrap();
    let started = std::time::Instant::now();
    let r = prov_cfg(
        &work,
        &cfg,
        &[
            "extension",
            "test",
            "--integration",
            "--step-timeout",
            "3",
            "stuck",
        ],
    )
    .code(1)
    .has("FAIL integration taskserv: install")
    .has("timed out after 3")
    .has("not run: install failed");
    assert!(r.stdout.contains("0 passed, 5 failed"), "{}", r.stdout);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(35),
        "the run waited for the hung script: {:?}",
        started.elapsed()
    );
}

#[test]
fn taskserv_skeleton_validates_strict_and_passes_its_tests() {
    scaffold_passes(
        "taskserv",
        "hello",
        &[],
        &["install", "status", "configure", "upgrade", "uninstall"],
    );
}

#[test]
fn cluster_skeleton_validates_strict_and_passes_its_tests() {
    scaffold_passes(
        "cluster",
        "farm",
        &[],
        &["create", "status", "scale", "upgrade", "delete"],
    );
}

#[test]
fn provider_skeletons_validate_strict_and_pass_their_tests() {
    let steps = ["create", "info", "stop", "start", "delete"];
    scaffold_passes("provider", "pycloud", &[], &steps);
    if Command::new("jq").arg("--version").output().is_ok() {
        scaffold_passes("provider", "shcloud", &["--lang", "bash"], &steps);
    } else {
        assert!(
            std::env::var("PROV_REQUIRE_ROOT_NET").as_deref() != Ok("1"),
            "jq is missing"
        );
        println!("SKIPPED: the bash provider skeleton needs jq");
    }
}

#[test]
fn broken_extensions_name_file_line_and_rule() {
    let (_t, work, cfg) = scratch();
    prov_cfg(&work, &cfg, &["extension", "new", "taskserv", "broken"]).ok();
    let d = work.join("broken");
    let manifest = std::fs::read_to_string(d.join("manifest.toml")).unwrap();
    std::fs::write(
        d.join("manifest.toml"),
        manifest
            .replace("version = \"0.1.0\"", "version = \"0.1\"")
            .replace(
                "dependencies = []",
                "dependencies = [\"nosuch\", { name = \"redis\", version = \">=99\" }]",
            )
            .replace("prov_version = \">=0.1.0\"", "prov_version = \">=99.0.0\""),
    )
    .unwrap();
    std::fs::remove_file(d.join("scripts/status.sh")).unwrap();
    std::fs::remove_file(d.join("API.md")).unwrap();
    std::fs::write(
        d.join("schemas/settings.ncl"),
        "{\n  interval | Number | default = 5,\n  message | String | default = 7,\n}\n",
    )
    .unwrap();
    std::fs::write(
        d.join("schemas/version.ncl"),
        "{ name = \"broken\", source = { type = \"apt\" }, install = { binary_name = \"x\" } }\n",
    )
    .unwrap();
    let r = prov_cfg(&work, &cfg, &["extension", "validate", "broken"])
        .code(1)
        .has("error[interface] scripts/status.sh: missing: a taskserv must implement `status`")
        .has("error[version] manifest.toml:6: [extension] version \"0.1\" is not semantic versioning")
        .has("error[dependency] manifest.toml:9: dependency taskserv \"nosuch\" is not found")
        .has("needs version >=99")
        .has("[compatibility] prov_version = \">=99.0.0\": prov here is")
        .has("warning[documents] API.md: missing")
        .has("does not satisfy the seed's TaskservVersion contract")
        .has("needs `package`")
        .has("invalid:");
    assert!(
        r.stdout.contains("error[schema] ") && r.stdout.contains("settings.ncl:3"),
        "{}",
        r.stdout
    );
    let v: Value = serde_json::from_str(
        &prov_cfg(&work, &cfg, &["extension", "validate", "--json", "broken"])
            .code(1)
            .stdout,
    )
    .unwrap();
    assert_eq!(v["valid"], false);
    let findings = v["findings"].as_array().unwrap();
    for rule in [
        "structure",
        "schema",
        "interface",
        "dependency",
        "version",
        "documents",
    ] {
        if rule == "structure" {
            continue;
        }
        assert!(
            findings.iter().any(|f| f["rule"] == rule),
            "no {rule} finding: {v}"
        );
    }
    let dep = findings.iter().find(|f| f["rule"] == "dependency").unwrap();
    assert!(dep["file"].as_str().unwrap().ends_with("manifest.toml"));
    assert_eq!(dep["line"], 9);

    // Only a missing document: valid, but not under --strict.
    let (_t2, work2, cfg2) = scratch();
    prov_cfg(&work2, &cfg2, &["extension", "new", "taskserv", "nodoc"]).ok();
    std::fs::remove_file(work2.join("nodoc/EXAMPLES.md")).unwrap();
    prov_cfg(&work2, &cfg2, &["extension", "validate", "nodoc"])
        .ok()
        .has("valid: 0 errors, 1 warning");
    prov_cfg(
        &work2,
        &cfg2,
        &["extension", "validate", "--strict", "nodoc"],
    )
    .code(1)
    .has("warning[documents] EXAMPLES.md: missing")
    .has("(--strict: warnings fail)");
    // The wrong --type, and a directory without a manifest.
    prov_cfg(
        &work2,
        &cfg2,
        &["extension", "validate", "--type", "cluster", "nodoc"],
    )
    .code(1)
    .has("error[structure] manifest.toml:5: type is \"taskserv\", but \"cluster\" was asked for");
    prov_cfg(&work2, &cfg2, &["extension", "validate", "."])
        .code(1)
        .has("error[structure] manifest.toml: missing");
}

#[test]
fn registries_precedence_and_a_registered_taskserv_in_use() {
    let (_t, work, cfg) = scratch();
    prov_cfg(&work, &cfg, &["extension", "new", "taskserv", "beat"]).ok();
    let user_file = cfg.join("prov/extensions.toml");

    // An invalid extension is refused and nothing is written.
    prov_cfg(&work, &cfg, &["extension", "new", "taskserv", "bad"]).ok();
    std::fs::remove_file(work.join("bad/scripts/install.sh")).unwrap();
    prov_cfg(&work, &cfg, &["extension", "register", "bad"])
        .code(1)
        .has("not registered: it does not validate")
        .has("error[interface] scripts/install.sh");
    assert!(!user_file.exists());

    prov_cfg(&work, &cfg, &["extension", "register", "beat"])
        .ok()
        .has("registered taskserv beat 0.1.0")
        .has(user_file.to_str().unwrap());
    let text = std::fs::read_to_string(&user_file).unwrap();
    assert!(
        text.contains("name = \"beat\"") && text.contains("type = \"taskserv\""),
        "{text}"
    );

    // A workspace that uses it: found through the user's registry.
    let ws = work.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    std::fs::write(
        ws.join("main.ncl"),
        r#"{
  providers = { local = { isolation = "none", defaults = { plan = "small", zone = "local" } } },
  servers = { s = { provider = "local", taskservs = { beat = { settings = { message = "m" } } } } },
}"#,
    )
    .unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .ok()
        .has("+ taskserv.s.beat");
    let rows = |dir: &Path| -> Vec<Value> {
        let v: Value = serde_json::from_str(
            &prov_cfg(
                dir,
                &cfg,
                &["extension", "list", "--type", "taskserv", "--json"],
            )
            .ok()
            .stdout,
        )
        .unwrap();
        v.as_array().unwrap().clone()
    };
    let listed = rows(&ws);
    let beat: Vec<&Value> = listed.iter().filter(|r| r["name"] == "beat").collect();
    assert_eq!(beat.len(), 1, "{listed:?}");
    assert_eq!(beat[0]["source"], "registered (user)");
    assert_eq!(beat[0]["valid"], true);
    assert_eq!(beat[0]["interface_version"], "^1");
    let redis = listed.iter().find(|r| r["name"] == "redis").unwrap();
    assert_eq!(redis["source"], "catalog");

    // The same name in the workspace's registry wins over the user's, and its own
    // extensions/ directory over both; `list` shows all three and which one is used.
    let copy = ws.join("vendor/beat");
    std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
    assert!(Command::new("cp")
        .args([
            "-r",
            work.join("beat").to_str().unwrap(),
            copy.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success());
    prov_cfg(
        &ws,
        &cfg,
        &["extension", "register", "--workspace", "vendor/beat"],
    )
    .ok()
    .has("(vendor/beat)");
    let committed = std::fs::read_to_string(ws.join("extensions.toml")).unwrap();
    assert!(committed.contains("path = \"vendor/beat\""), "{committed}");
    let local = ws.join("extensions/taskservs/beat");
    std::fs::create_dir_all(local.parent().unwrap()).unwrap();
    assert!(Command::new("cp")
        .args([
            "-r",
            work.join("beat").to_str().unwrap(),
            local.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success());
    let listed = rows(&ws);
    let beat: Vec<(String, bool)> = listed
        .iter()
        .filter(|r| r["name"] == "beat")
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_string(),
                r["active"] == true,
            )
        })
        .collect();
    assert_eq!(
        beat,
        [
            ("workspace".to_string(), true),
            ("registered (workspace)".to_string(), false),
            ("registered (user)".to_string(), false),
        ]
    );
    // A PROV_EXTENSIONS_PATH tree sits between the two registries.
    let tree = work.join("tree/taskservs/beat");
    std::fs::create_dir_all(tree.parent().unwrap()).unwrap();
    assert!(Command::new("cp")
        .args([
            "-r",
            work.join("beat").to_str().unwrap(),
            tree.to_str().unwrap()
        ])
        .status()
        .unwrap()
        .success());
    let out = prov_in(
        &ws,
        &["extension", "list", "--type", "taskserv", "--json"],
        &[
            ("XDG_CONFIG_HOME", cfg.to_str().unwrap()),
            ("PROV_EXTENSIONS_PATH", work.join("tree").to_str().unwrap()),
        ],
    )
    .ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let sources: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["name"] == "beat")
        .map(|r| r["source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        [
            "workspace",
            "registered (workspace)",
            "PROV_EXTENSIONS_PATH",
            "registered (user)"
        ]
    );
    prov_cfg(&ws, &cfg, &["extension", "list", "--type", "taskserv"])
        .ok()
        .has("shadowed by workspace")
        .has("precedence (first wins): built-in (compiled into prov) > workspace extensions/ > registered (workspace) > PROV_EXTENSIONS_PATH > registered (user) > catalog");

    // Unregistering; a name that is not registered lists what is.
    prov_cfg(&ws, &cfg, &["extension", "unregister", "beat"])
        .ok()
        .has("unregistered taskserv beat");
    prov_cfg(&ws, &cfg, &["extension", "unregister", "beat"])
        .code(1)
        .has("no registered extension named \"beat\": it registers nothing");
    prov_cfg(
        &ws,
        &cfg,
        &[
            "extension",
            "unregister",
            "--workspace",
            "beat",
            "--type",
            "taskserv",
        ],
    )
    .ok();

    // A registered directory that went away is an error naming the registry file.
    prov_cfg(&work, &cfg, &["extension", "register", "beat"]).ok();
    std::fs::remove_dir_all(work.join("beat")).unwrap();
    std::fs::remove_dir_all(&local).unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .code(1)
        .has(user_file.to_str().unwrap())
        .has("unregister beat");
}

#[test]
fn every_catalog_extension_validates_strict_and_passes_its_unit_tests() {
    let (_t, work, cfg) = scratch();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs: Vec<PathBuf> = ["taskservs/catalog", "clusters/catalog"]
        .iter()
        .flat_map(|c| std::fs::read_dir(root.join(c)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 11, "{dirs:?}");
    for d in &dirs {
        let d = d.to_str().unwrap();
        prov_cfg(&work, &cfg, &["extension", "validate", "--strict", d])
            .ok()
            .has("valid: 0 errors, 0 warnings");
        let r = prov_cfg(&work, &cfg, &["extension", "test", "--unit", d])
            .ok()
            .has(" passed, 0 failed");
        assert!(
            r.stdout.contains("ok   unit template"),
            "{d}: no template case\n{}",
            r.stdout
        );
        assert!(
            r.stdout.contains("ok   unit settings"),
            "{d}: no settings case\n{}",
            r.stdout
        );
    }
    // The quickstart's workspace extensions: heartbeat's dependency (motd) is its sibling,
    // found as the workspace finds it, wherever validate runs from.
    for n in ["motd", "heartbeat"] {
        let d = root
            .join("examples/quickstart/extensions/taskservs")
            .join(n);
        prov_cfg(&work, &cfg, &["extension", "validate", d.to_str().unwrap()])
            .ok()
            .has("valid: 0 errors")
            .lacks("error[");
    }
    // The copies prov uses (the embedded catalog, written out) are the same extensions.
    let v: Value = serde_json::from_str(
        &prov_cfg(&work, &cfg, &["extension", "list", "--json"])
            .ok()
            .stdout,
    )
    .unwrap();
    let catalog: Vec<&Value> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "catalog")
        .collect();
    assert_eq!(catalog.len(), dirs.len());
    for r in catalog {
        assert_eq!(
            (r["valid"].clone(), r["warnings"].clone()),
            (Value::Bool(true), Value::from(0)),
            "{r}"
        );
        assert_eq!(r["interface_version"], "^1");
    }
    // What is compiled into prov is listed too, ahead of every directory of its name.
    let builtin: Vec<(String, String)> = v
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["source"] == "built-in")
        .map(|r| {
            assert_eq!(
                (&r["active"], &r["valid"]),
                (&json!(true), &json!(true)),
                "{r}"
            );
            (
                r["type"].as_str().unwrap().to_string(),
                r["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("provider", "sim"),
        ("provider", "local"),
        ("provider", "upcloud"),
        ("taskserv", "sim"),
        ("cluster", "sim"),
    ] {
        assert!(
            builtin.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not listed: {builtin:?}"
        );
    }
    prov_cfg(&work, &cfg, &["extension", "list", "--type", "provider"])
        .ok()
        .has("compiled into prov");
}

/// The taskserv skeleton's lifecycle on a server in a network namespace (its scripts over the
/// system ssh into the sandbox's sshd): root only, like the other netns tests.
#[test]
fn taskserv_skeleton_lifecycle_in_a_network_namespace() {
    if !super::local::root_net("taskserv_skeleton_lifecycle_in_a_network_namespace") {
        return;
    }
    let (_t, work, cfg) = scratch();
    prov_cfg(&work, &cfg, &["extension", "new", "taskserv", "nsbeat"]).ok();
    let file = work.join("nsbeat/tests/integration.toml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("[taskserv]\n", "[taskserv]\nisolation = \"netns\"\n"),
    )
    .unwrap();
    all_passed(
        prov_cfg(
            &work,
            &cfg,
            &["extension", "test", "--integration", "nsbeat"],
        ),
        &["install", "status", "configure", "upgrade", "uninstall"],
        5,
    );
}

/// A taskserv without a script its operations need, or asking for another prov, is a plan
/// error naming the file, not a failure half-way through an apply.
#[test]
fn a_missing_script_is_a_plan_error() {
    let (_t, work, cfg) = scratch();
    let ws = work.join("ws");
    std::fs::create_dir_all(ws.join("extensions/taskservs")).unwrap();
    prov_cfg(
        &ws,
        &cfg,
        &[
            "extension",
            "new",
            "taskserv",
            "beat",
            "--dir",
            "extensions/taskservs/beat",
        ],
    )
    .ok();
    std::fs::remove_file(ws.join("extensions/taskservs/beat/scripts/status.sh")).unwrap();
    std::fs::write(
        ws.join("main.ncl"),
        r#"{
  providers = { local = { isolation = "none", defaults = { plan = "small", zone = "local" } } },
  servers = { s = { provider = "local", taskservs = { beat = {} } } },
}"#,
    )
    .unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .code(1)
        .has("taskserv.s.beat")
        .has("scripts/status.sh is missing: beat cannot status");
    assert!(!ws.join(".prov/state").exists());

    // A manifest asking for a prov this is not: a plan error naming the manifest and line.
    std::fs::write(
        ws.join("extensions/taskservs/beat/scripts/status.sh"),
        "exit 4\n",
    )
    .unwrap();
    let m = ws.join("extensions/taskservs/beat/manifest.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        text.replace("prov_version = \">=0.1.0\"", "prov_version = \">=99\""),
    )
    .unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .code(1)
        .has("beat/manifest.toml:12: [compatibility] prov_version = \">=99\": prov here is")
        .lacks("is missing");
    assert!(!ws.join(".prov/state").exists());
    std::fs::write(&m, &text).unwrap();
}

/// `prov extension validate` of the workspace's beat refuses it with `validate_says`, and a plan
/// of `ws` refuses it with each of `plan_says`, writing no state.
fn both_refuse(ws: &Path, cfg: &Path, validate_says: &str, plan_says: &[&str]) {
    prov_cfg(
        ws,
        cfg,
        &["extension", "validate", "extensions/taskservs/beat"],
    )
    .code(1)
    .has(validate_says);
    let mut r = prov_cfg(ws, cfg, &["plan", "--no-cost"])
        .code(1)
        .has("taskserv.s.beat");
    for s in plan_says {
        r = r.has(s);
    }
    assert!(!ws.join(".prov/state").exists());
}

/// What `prov extension validate` refuses, no plan uses: a version descriptor outside the
/// seed's TaskservVersion contract, a dependency outside its version requirement, and a
/// version a taskserv's descriptor needs of a sibling that the configuration pins otherwise.
#[test]
fn plans_refuse_what_validate_refuses_about_versions_and_dependencies() {
    let (_t, work, cfg) = scratch();
    let ws = work.join("ws");
    std::fs::create_dir_all(ws.join("extensions/taskservs")).unwrap();
    for name in ["beat", "base"] {
        let dir = format!("extensions/taskservs/{name}");
        prov_cfg(
            &ws,
            &cfg,
            &["extension", "new", "taskserv", name, "--dir", &dir],
        )
        .ok();
    }
    let main = |base_version: &str| {
        format!(
            r#"{{
  providers = {{ local = {{ isolation = "none", defaults = {{ plan = "small", zone = "local" }} }} }},
  servers = {{ s = {{ provider = "local", taskservs = {{ beat = {{}}, base = {{ version = "{base_version}" }} }} }} }},
}}"#
        )
    };
    std::fs::write(ws.join("main.ncl"), main("1.0.0")).unwrap();
    let beat = ws.join("extensions/taskservs/beat");
    let version = beat.join("schemas/version.ncl");
    let good_version = std::fs::read_to_string(&version).unwrap();
    prov_cfg(&ws, &cfg, &["validate"]).ok();

    // The seed's contract: an apt source needs its package.
    std::fs::write(
        &version,
        "{ name = \"beat\", source = { type = \"apt\" }, install = { binary_name = \"x\" } }\n",
    )
    .unwrap();
    both_refuse(
        &ws,
        &cfg,
        "TaskservVersion",
        &[
            "beat/schemas/version.ncl does not satisfy the seed's TaskservVersion contract",
            "a source of type apt needs `package`",
        ],
    );

    // The descriptor's dependencies: base at >=1.1, pinned at 1.0.0 on the same server.
    std::fs::write(
        &version,
        good_version.replace(
            "install =",
            "dependencies = [{ name = \"base\", version = \">=1.1\" }],\n  install =",
        ),
    )
    .unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .code(1)
        .has("taskserv.s.beat")
        .has("needs taskserv \"base\" >=1.1")
        .has("but taskserv.s.base pins version \"1.0.0\"");
    std::fs::write(ws.join("main.ncl"), main("1.1.0")).unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"]).ok();
    std::fs::write(&version, &good_version).unwrap();

    // The manifest's dependencies: base's extension at >=2 (it is 0.1.0).
    let m = beat.join("manifest.toml");
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &m,
        text.replace(
            "dependencies = []",
            "dependencies = [{ name = \"base\", version = \">=2\" }]",
        ),
    )
    .unwrap();
    both_refuse(
        &ws,
        &cfg,
        "needs version >=2",
        &[
            "beat/manifest.toml:",
            "dependency taskserv \"base\" needs version >=2, but",
            "is 0.1.0",
        ],
    );
}

/// A provider registered in the workspace's registry is code from the repository: an untrusted
/// plan refuses it as it refuses one in `extensions/`, and a trusted plan uses it.
#[test]
fn untrusted_plans_refuse_a_workspace_registered_provider() {
    let (_t, work, cfg) = scratch();
    let ws = work.join("ws");
    std::fs::create_dir_all(&ws).unwrap();
    prov_cfg(
        &ws,
        &cfg,
        &[
            "extension",
            "new",
            "provider",
            "pycloud",
            "--dir",
            "vendor/pycloud",
        ],
    )
    .ok();
    prov_cfg(
        &ws,
        &cfg,
        &["extension", "register", "--workspace", "vendor/pycloud"],
    )
    .ok();
    std::fs::write(
        ws.join("main.ncl"),
        r#"{ servers = { web = { provider = "pycloud", plan = "small", zone = "pycloud-a" } } }"#,
    )
    .unwrap();
    prov_cfg(&ws, &cfg, &["plan", "--untrusted", "--no-cost"])
        .code(1)
        .has("uses the provider extension pycloud");
    prov_cfg(&ws, &cfg, &["plan", "--no-cost"])
        .ok()
        .has("+ server.web");
}
