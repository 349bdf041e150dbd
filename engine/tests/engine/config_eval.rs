//! Tests of `prov_engine::config`: evaluating workspaces (fixtures under
//! `tests/fixtures/config/<case>/`, or sources written on the fly) with Nickel.
//!
//! Every test evaluates a copy of its workspace in a temporary directory, because evaluation
//! writes the schema library to `<workspace>/.prov/lib/`.

use std::path::{Path, PathBuf};

use prov_engine::config::{
    evaluate, evaluate_with_report, schema_library, ConfigError, ContractCheck, EvalOptions,
    Evaluated,
};
use serde_json::{json, Value};

fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/config")
        .join(name)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            if entry.file_name() != ".prov" {
                copy_dir(&entry.path(), &target);
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A temporary copy of the fixture workspace `name`.
fn workspace(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture_dir(name), dir.path());
    dir
}

/// A temporary workspace whose `main.ncl` is `source`.
fn workspace_with(source: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.ncl"), source).unwrap();
    dir
}

fn eval_fixture(name: &str) -> Result<Evaluated, ConfigError> {
    let dir = workspace(name);
    evaluate(dir.path(), &EvalOptions::default())
}

fn eval_source(source: &str) -> Result<Evaluated, ConfigError> {
    let dir = workspace_with(source);
    evaluate(dir.path(), &EvalOptions::default())
}

/// The rendered Nickel diagnostic of a failed evaluation.
fn nickel_error(result: Result<Evaluated, ConfigError>) -> String {
    match result {
        Err(ConfigError::Nickel { rendered }) => rendered,
        Err(other) => panic!("expected a Nickel error, got {other:?}"),
        Ok(e) => panic!("expected a Nickel error, got {:#}", e.value),
    }
}

fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
    }
}

#[test]
fn valid_workspace_evaluates_to_expected_json_with_defaults() {
    let evaluated = eval_fixture("valid").unwrap();
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir("valid").join("expected.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(evaluated.value, expected);

    let v = &evaluated.value;
    // Values written in main.ncl are kept.
    assert_eq!(v["servers"]["web-01"]["plan"], "t3.small");
    assert_eq!(v["providers"]["aws"]["region"], "us-east-1");
    assert_eq!(v["providers"]["sim"], json!({ "latency_ms": 0 }));
    assert_eq!(v["outputs"]["web_ip"], "${server.web-01.public_ip}");
    assert_eq!(
        v["servers"]["web-02"]["tags"]["peer"],
        "${server.web-01.private_ip}"
    );
    // Defaults are filled in.
    assert_eq!(v["backend"], json!({ "type": "sled" }));
    // (os is filled at load time, after providers.<p>.defaults; see the provider_defaults snapshot.)
    assert_eq!(v["servers"]["web-02"]["os"], Value::Null);
    assert_eq!(
        v["servers"]["web-02"]["storage"],
        json!({ "size": 40, "encrypted": true })
    );
    assert_eq!(
        v["servers"]["web-02"]["lifecycle"],
        json!({ "prevent_destroy": true, "create_before_destroy": false, "ignore_changes": [] })
    );
    assert_eq!(
        v["providers"]["aws"]["api"],
        json!({ "base_url": "http://127.0.0.1:5055", "version": "v1", "timeout": 30, "retries": 3 })
    );
    // Optional fields without a value are absent, so the engine can fill them.
    assert!(v["servers"]["web-02"].get("plan").is_none());
    assert!(v["servers"]["web-02"].get("hostname").is_none());
    // Enum tags export as strings; taskserv dependencies are normalised to records.
    assert_eq!(
        v["servers"]["web-01"]["firewall_rules"][0]["direction"],
        "ingress"
    );
    assert_eq!(
        v["servers"]["web-01"]["taskservs"]["kubernetes"]["depends_on"],
        json!([
            { "name": "containerd", "kind": "Requires" },
            { "name": "etcd", "kind": "PrefersBefore" },
        ])
    );
    assert_eq!(
        v["servers"]["web-01"]["taskservs"]["kubernetes"]["health_check"],
        json!({ "endpoint": "http://localhost:6443/healthz", "interval": 30, "timeout": 5, "retries": 3 })
    );
    assert_eq!(
        v["servers"]["web-01"]["taskservs"]["containerd"]["on_error"],
        "Stop"
    );
    // The library's buildkit cluster, placed on web-01.
    let buildkit = &v["clusters"]["buildkit"];
    assert_eq!(buildkit["name"], "buildkit");
    assert_eq!(buildkit["servers"], json!(["web-01"]));
    let names: Vec<&str> = buildkit["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["containerd", "buildkit", "registry"]);
    assert_eq!(
        buildkit["components"][1]["dependencies"],
        json!(["containerd"])
    );
    assert_eq!(buildkit["components"][2]["type"], "application");
    assert_eq!(buildkit["components"][0]["resources"]["replicas"], 1);
}

#[test]
fn valid_workspace_positions_and_files() {
    let dir = workspace("valid");
    let evaluated = evaluate(dir.path(), &EvalOptions::default()).unwrap();
    let p = &evaluated.positions;
    let at = |key: &str| p.get(key).map(String::as_str);
    assert_eq!(at("servers.web-01"), Some("main.ncl:15:5"));
    assert_eq!(at("servers.web-02"), Some("main.ncl:30:5"));
    assert_eq!(
        at("servers.web-01.taskservs.containerd"),
        Some("main.ncl:22:9")
    );
    assert_eq!(
        at("servers.web-01.taskservs.kubernetes"),
        Some("main.ncl:23:9")
    );
    assert_eq!(at("providers.sim"), Some("main.ncl:7:5"));
    assert_eq!(at("providers.aws"), Some("main.ncl:8:5"));
    assert_eq!(at("clusters.buildkit"), Some("main.ncl:38:16"));
    assert_eq!(at("outputs.web_ip"), Some("main.ncl:39:15"));
    // The buildkit components really are declared in the shipped library.
    for component in ["containerd", "buildkit", "registry"] {
        let pos = at(&format!("clusters.buildkit.components.{component}")).unwrap();
        assert!(pos.starts_with(".prov/lib/prov/schemas.ncl:"), "{pos}");
    }
    assert_eq!(p.len(), 11, "{p:#?}");

    assert_eq!(evaluated.files[0], dir.path().join("main.ncl"));
    assert!(evaluated
        .files
        .contains(&dir.path().join(".prov/lib/prov/schemas.ncl")));
}

#[test]
fn unannotated_workspace_still_gets_defaults() {
    let evaluated = eval_fixture("unannotated").unwrap();
    let v = &evaluated.value;
    assert_eq!(v["backend"]["type"], "sled");
    assert_eq!(v["providers"], json!({}));
    assert_eq!(v["outputs"], json!({}));
    let server = &v["servers"]["web-01"];
    assert_eq!(server["provider"], "sim");
    // os/ssh_keys/firewall_rules stay unset so provider defaults can fill them at load time.
    assert_eq!(server["os"], Value::Null);
    assert_eq!(server["ssh_keys"], Value::Null);
    assert_eq!(server["firewall_rules"], Value::Null);
    // Left out rather than defaulted (prov reads a missing one as empty): cheaper to evaluate.
    assert_eq!(server["depends_on"], Value::Null);
    assert_eq!(
        server["taskservs"]["containerd"]["depends_on"],
        json!([{ "name": "runc", "kind": "Requires" }])
    );
    assert_eq!(server["taskservs"]["containerd"]["max_retries"], 0);
    let cluster = &v["clusters"]["ci"];
    assert_eq!(cluster["version"], "1.0.0");
    assert_eq!(cluster["resources"]["memory_per_node"], "4Gi");
    assert_eq!(cluster["network"]["dns_domain"], "cluster.local");
    assert_eq!(cluster["components"][0]["enabled"], true);
    assert_eq!(cluster["components"][0]["type"], "application");
    assert!(cluster.get("name").is_none());

    assert_eq!(
        evaluated
            .positions
            .get("servers.web-01.taskservs.containerd")
            .map(String::as_str),
        Some("main.ncl:5:15")
    );
    assert_eq!(
        evaluated
            .positions
            .get("clusters.ci.components.registry")
            .map(String::as_str),
        Some("main.ncl:8:19")
    );
}

#[test]
fn unannotated_workspace_reads_the_library_through_the_contract() {
    let dir = workspace("unannotated");
    let evaluated = evaluate(dir.path(), &EvalOptions::default()).unwrap();
    assert_eq!(
        evaluated.files,
        [
            dir.path().join("main.ncl"),
            dir.path().join(".prov/lib/prov/workspace.ncl"),
            dir.path().join(".prov/lib/prov/schemas.ncl"),
        ]
    );
}

#[test]
fn positions_are_best_effort() {
    let evaluated = eval_source(
        r#"let mk = fun n => { field = n, value = { provider = "sim" } } in
{
  servers = std.record.from_array (std.array.map mk ["gen-a", "gen-b"]) & {
    "quoted-1" = { provider = "sim" },
  },
}"#,
    )
    .unwrap();
    assert_eq!(evaluated.value["servers"]["gen-b"]["provider"], "sim");
    // Names computed at evaluation time have no source position.
    assert_eq!(
        evaluated.positions.into_iter().collect::<Vec<_>>(),
        [("servers.quoted-1".to_string(), "main.ncl:4:5".to_string())]
    );
}

#[test]
fn unannotated_workspace_is_still_contract_checked() {
    let rendered = nickel_error(eval_fixture("unannotated_violation"));
    assert_contains(
        &rendered,
        &[
            "contract broken by the value of `size`",
            "expected a number",
            "main.ncl:5:26",
            "storage = { size = \"big\" }",
        ],
    );
}

#[test]
fn syntax_error_points_into_main_ncl() {
    let rendered = nickel_error(eval_fixture("syntax_error"));
    assert_contains(
        &rendered,
        &["error: unexpected token", "main.ncl:6:12", "zone = \"z1\""],
    );
}

#[test]
fn contract_violation_points_into_main_ncl() {
    let rendered = nickel_error(eval_fixture("contract_violation"));
    assert_contains(
        &rendered,
        &[
            "contract broken by the value of `direction`",
            "tag not in the enum type",
            "main.ncl:7:23",
            "'sideways",
        ],
    );
}

#[test]
fn unknown_server_field_is_an_error() {
    let rendered = nickel_error(eval_fixture("unknown_field"));
    assert_contains(
        &rendered,
        &[
            "extra field `ostype`",
            "main.ncl:3:14",
            "Have you misspelled a field?",
        ],
    );
}

#[test]
fn unknown_top_level_section_is_an_error() {
    let rendered = nickel_error(eval_fixture("unknown_section"));
    assert_contains(&rendered, &["extra field `sever`", "main.ncl:1:1"]);
}

#[test]
fn relative_import_of_a_helper_file() {
    let dir = workspace("import_helper");
    let evaluated = evaluate(dir.path(), &EvalOptions::default()).unwrap();
    let v = &evaluated.value;
    assert_eq!(v["servers"]["web-01"]["hostname"], "web-01.example.org");
    assert_eq!(v["servers"]["web-02"]["hostname"], "web-02.example.org");
    assert_eq!(v["servers"]["web-02"]["tags"], json!({ "role": "backup" }));
    assert_eq!(v["servers"]["web-01"]["tags"], Value::Null);
    assert_eq!(
        v["servers"]["web-01"]["firewall_rules"],
        json!([{ "direction": "ingress", "protocol": "tcp", "port": "22", "action": "allow" }])
    );
    assert_eq!(v["outputs"], json!({ "count": 2 }));
    assert_eq!(
        evaluated.positions.get("outputs.count").map(String::as_str),
        Some("lib/helpers.ncl:13:15")
    );
    assert_eq!(
        evaluated
            .positions
            .get("servers.web-02")
            .map(String::as_str),
        Some("main.ncl:6:5")
    );
    assert_eq!(evaluated.files[0], dir.path().join("main.ncl"));
    assert_eq!(evaluated.files[1], dir.path().join("lib/helpers.ncl"));
    assert!(evaluated
        .files
        .contains(&dir.path().join(".prov/lib/prov/workspace.ncl")));
}

/// `depth` nested records `{ a = ... }` under `outputs.deep`; the total bracket depth is
/// `depth + 2`.
fn nested_source(depth: usize) -> String {
    format!(
        "{{\n  outputs = {{\n    deep = {}1{}\n  }},\n}}\n",
        "{ a = ".repeat(depth),
        " }".repeat(depth)
    )
}

#[test]
fn very_deep_nesting_is_rejected_before_nickel_sees_it() {
    match eval_source(&nested_source(50_000)) {
        // 2 levels on lines 1 and 2, then the nesting starts at column 12 of line 3, six
        // characters per level: the 1001st bracket is the 999th level.
        Err(ConfigError::TooDeep {
            file,
            line,
            column,
            depth,
            limit,
        }) => {
            assert!(file.ends_with("main.ncl"), "{}", file.display());
            assert_eq!((line, column, depth, limit), (3, 12 + 998 * 6, 1001, 1000));
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn long_operator_chains_are_rejected_too() {
    // `1 + 1 + ...` nests as deeply as it is long; 50,000 of them overflow even the 256 MiB
    // evaluation stack, which would abort the process.
    let source = format!("{{ outputs.x = {} }}\n", vec!["1"; 50_000].join(" + "));
    match eval_source(&source) {
        Err(ConfigError::TooDeep {
            line,
            column,
            depth,
            limit,
            ..
        }) => assert_eq!((line, column, depth, limit), (1, 17 + 999 * 4, 1001, 1000)),
        other => panic!("expected TooDeep, got {other:?}"),
    }
    // 500 are fine.
    let source = format!("{{ outputs.x = {} }}\n", vec!["1"; 500].join(" + "));
    assert_eq!(eval_source(&source).unwrap().value["outputs"]["x"], 500);
}

/// The source limit guards Nickel; the value limit (`prov_state::MAX_VALUE_DEPTH`) is what
/// the state can store and read back: 900 levels pass the first and are refused by the second,
/// with the path and the file.
#[test]
fn depth_900_passes_the_source_scan_and_is_refused_as_a_value() {
    match eval_source(&nested_source(900)) {
        Err(e @ ConfigError::ValueTooDeep { .. }) => {
            let ConfigError::ValueTooDeep {
                ref at,
                ref path,
                depth,
                limit,
            } = e
            else {
                unreachable!()
            };
            assert_eq!((depth, limit), (902, prov_state::MAX_VALUE_DEPTH));
            assert_eq!(at, "main.ncl:3:5", "the output's declaration");
            assert!(path.starts_with("outputs.deep.a.a.a"), "{path}");
            let msg = e.to_string();
            assert!(
                msg.starts_with("main.ncl:3:5: configuration nested too deeply at outputs.deep.a"),
                "{msg}"
            );
            assert!(
                msg.contains("902 levels of records and arrays")
                    && msg.contains("more than the limit of 100"),
                "{msg}"
            );
        }
        other => panic!("expected ValueTooDeep, got {other:?}"),
    }
}

/// Exactly at the limit evaluates; one level more is refused, wherever it is (here a taskserv's
/// settings: 5 levels above them, top, servers, web, taskservs, redis, + 95 = 100).
#[test]
fn value_depth_limit_is_exact_and_names_the_declaration() {
    let source = |levels: usize| {
        format!(
            "{{\n  servers = {{\n    web = {{ provider = \"sim\",\n      taskservs = {{\n        redis = {{\n          \
             settings = {}1{},\n        }},\n      }},\n    }},\n  }},\n}}\n",
            "{ a = ".repeat(levels),
            " }".repeat(levels)
        )
    };
    let max = prov_state::MAX_VALUE_DEPTH;
    let evaluated = eval_source(&source(max - 5)).unwrap();
    let settings = &evaluated.value["servers"]["web"]["taskservs"]["redis"]["settings"];
    assert_eq!(prov_state::value_depth(settings), max - 5);
    assert_eq!(prov_state::value_depth(&evaluated.value), max);
    match eval_source(&source(max - 4)) {
        Err(ConfigError::ValueTooDeep {
            at, path, depth, ..
        }) => {
            assert_eq!(depth, max + 1);
            assert_eq!(at, "main.ncl:5:9", "the taskserv's declaration");
            assert!(
                path.starts_with("servers.web.taskservs.redis.settings.a.a.a.")
                    && path.ends_with(".a"),
                "{path}"
            );
        }
        other => panic!("expected ValueTooDeep, got {other:?}"),
    }
}

/// Values built by functions nest without brackets in the source: the scan cannot see them,
/// the value check does.
#[test]
fn computed_deep_values_are_refused_too() {
    let source = "let rec nest = fun n => if n == 0 then [] else { a = nest (n - 1) } in\n\
                  { outputs = { x = nest 300 } }\n";
    match eval_source(source) {
        Err(ConfigError::ValueTooDeep { at, depth, .. }) => {
            assert_eq!(depth, 303);
            assert!(at.starts_with("main.ncl"), "{at}");
        }
        other => panic!("expected ValueTooDeep, got {other:?}"),
    }
}

#[test]
fn depth_limit_counts_across_imports() {
    let dir = workspace_with("{ outputs = { x = { y = import \"deep.ncl\" } } }");
    std::fs::write(
        dir.path().join("deep.ncl"),
        format!("{}1{}", "[".repeat(10), "]".repeat(10)),
    )
    .unwrap();
    let opts = EvalOptions {
        max_depth: 12,
        ..EvalOptions::default()
    };
    match evaluate(dir.path(), &opts) {
        Err(ConfigError::TooDeep {
            file,
            line,
            column,
            depth,
            ..
        }) => {
            assert_eq!(file, dir.path().join("deep.ncl"));
            assert_eq!((line, column, depth), (1, 10, 13));
        }
        other => panic!("expected TooDeep, got {other:?}"),
    }
    let opts = EvalOptions {
        max_depth: 13,
        ..EvalOptions::default()
    };
    let evaluated = evaluate(dir.path(), &opts).unwrap();
    assert_eq!(evaluated.files[1], dir.path().join("deep.ncl"));
}

#[test]
fn brackets_in_strings_and_comments_do_not_count() {
    let source = r#"# {{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{
{
  outputs = {
    a = "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{",
    b = m%"
      [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[
    "%,
    c = "%{ "((((((((((((((((((((((((((((" }",
  },
}
"#;
    let opts = EvalOptions {
        max_depth: 2,
        ..EvalOptions::default()
    };
    let dir = workspace_with(source);
    let evaluated = evaluate(dir.path(), &opts).unwrap();
    assert_eq!(
        evaluated.value["outputs"]["c"],
        "(((((((((((((((((((((((((((("
    );
}

#[test]
fn too_large_is_rejected() {
    let dir = workspace_with("{ outputs = { x = import \"big.ncl\" } }");
    std::fs::write(
        dir.path().join("big.ncl"),
        format!("\"{}\"", "x".repeat(5000)),
    )
    .unwrap();
    let opts = EvalOptions {
        max_bytes: 4096,
        ..EvalOptions::default()
    };
    match evaluate(dir.path(), &opts) {
        Err(ConfigError::TooLarge { bytes, limit }) => {
            assert_eq!(limit, 4096);
            assert!(bytes > 5000, "{bytes}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
}

/// A plain-data `main.ncl` is read without prov's lexical scan of it, but the size limit still
/// covers it and the library's files together, and a deep plain-data file is still refused
/// with the scan's error.
#[test]
fn plain_data_keeps_the_limits() {
    let source = "{ outputs = { x = 1 } }\n";
    let dir = workspace_with(source);
    let under = EvalOptions {
        max_bytes: source.len() as u64 + 1,
        ..EvalOptions::default()
    };
    match evaluate(dir.path(), &under) {
        Err(ConfigError::TooLarge { bytes, limit }) => {
            assert_eq!(limit, source.len() as u64 + 1);
            assert!(bytes > limit, "{bytes}");
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        evaluate(dir.path(), &EvalOptions::default()).unwrap().value["outputs"]["x"],
        1
    );
    // Within the reader's own bound (200) but over a lower source limit.
    let shallow = EvalOptions {
        max_depth: 20,
        cache: false,
        ..EvalOptions::default()
    };
    match evaluate(workspace_with(&nested_source(30)).path(), &shallow) {
        Err(ConfigError::TooDeep { depth, limit, .. }) => assert_eq!((depth, limit), (21, 20)),
        other => panic!("expected TooDeep, got {other:?}"),
    }
}

#[test]
fn missing_main_ncl() {
    let dir = tempfile::tempdir().unwrap();
    let err = evaluate(dir.path(), &EvalOptions::default()).unwrap_err();
    assert!(matches!(err, ConfigError::NoMainFile { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "no main.ncl in {}: a prov workspace is a directory with main.ncl",
            dir.path().display()
        )
    );
}

#[test]
fn missing_import_is_a_nickel_error() {
    let rendered = nickel_error(eval_source("{ outputs = import \"nope.ncl\" }"));
    assert_contains(&rendered, &["nope.ncl", "main.ncl:1:13"]);
}

/// Workspaces that break the schema, and what Nickel's diagnostic says.
const SCHEMA_VIOLATIONS: &[(&str, &[&str])] = &[
        (
            "{ servers.a = { provider = \"sim\", storage.size = 1.5 } }",
            &["expected a natural", "main.ncl:1:50"],
        ),
        (
            "{ servers.a = { provider = \"sim\", network.bandwidth = -1 } }",
            &["expected a natural"],
        ),
        (
            "{ servers.a = { provider = \"sim\", firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = \"70000\", action = 'allow }] } }",
            &["ports are in 0..65535"],
        ),
        (
            "{ servers.a = { provider = \"sim\", firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = 22, action = 'allow }] } }",
            &["expected a port as a string"],
        ),
        (
            "{ servers.a = { provider = \"sim\", firewall_rules = [{ direction = 'egress, protocol = 'tcp, action = 'permit }] } }",
            &["tag not in the enum type", "'permit"],
        ),
        ("{ servers.a = { plan = \"small\" } }", &["missing definition for `provider`"]),
        (
            "{ servers.a = { provider = \"sim\", taskservs.t = { on_error = 'Ignore } } }",
            &["tag not in the enum type"],
        ),
        (
            "{ servers.a = { provider = \"sim\", taskservs.t = { depends_on = [{ name = \"x\", kind = 'Needs }] } } }",
            &["tag not in the enum type"],
        ),
        (
            "{ servers.a = { provider = \"sim\", taskservs.t = { depends_on = [42] } } }",
            &["expected a taskserv name (a string) or a record { name, kind }"],
        ),
        (
            "{ servers.a = { provider = \"sim\", taskservs.t = { verison = \"1\" } } }",
            &["extra field `verison`"],
        ),
        (
            "{ servers.a = { provider = \"sim\", lifecycle = { prevent_destroy = \"yes\" } } }",
            &["contract broken by the value of `prevent_destroy`"],
        ),
        (
            "{ providers.aws = { auth = { method = 'password } } }",
            &["tag not in the enum type"],
        ),
        (
            "{ providers.aws = { api = { timeout = 5 } } }",
            &["missing definition for `base_url`"],
        ),
        (
            "{ clusters.c = { components = [{ name = \"x\", type = 'daemon }] } }",
            &["tag not in the enum type"],
        ),
        ("{ clusters.c = { servers = [] } }", &["missing definition for `components`"]),
        (
            "{ clusters.c = { components = [], resources.min_nodes = 0.5 } }",
            &["expected a natural"],
        ),
        ("{ backend = { type = 1 } }", &["contract broken by the value of `type`"]),
    ];

#[test]
fn schema_violations() {
    let cases = SCHEMA_VIOLATIONS;
    for (source, needles) in cases {
        let rendered = nickel_error(eval_source(source));
        assert_contains(&rendered, needles);
        assert_contains(&rendered, &["main.ncl"]);
    }
}

#[test]
fn open_and_optional_parts_of_the_schema() {
    let evaluated = eval_source(
        r#"let prov = import "prov/schemas.ncl" in
{
  backend = { type = "pg", conn = "postgres://prov@localhost/prov", pool = 4 },
  providers = {
    aws = {
      region = "eu-west-1",
      auth = { method = 'api_key, api_key = "k" },
      defaults = { plan = "t3.micro", firewall_rules = [{ direction = 'egress, protocol = 'udp, action = 'deny }] },
      features = { backup = false },
    },
  },
  servers.a = {
    provider = "aws",
    network = {},
    taskservs.t = { settings = { anything = [1, 2] }, health_check = { command = "true" } },
  },
  clusters.c = prov.clusters.buildkit & {
    name = "ci",
    implementation = "k8s",
    resources.min_nodes = 3,
    features.ingress = true,
  },
}"#,
    )
    .unwrap();
    let v = &evaluated.value;
    assert_eq!(v["backend"]["pool"], 4);
    assert_eq!(
        v["providers"]["aws"]["auth"],
        json!({ "method": "api_key", "api_key": "k" })
    );
    assert_eq!(
        v["providers"]["aws"]["features"],
        json!({ "load_balancer": false, "storage_encryption": true, "backup": false, "monitoring": false })
    );
    assert_eq!(
        v["providers"]["aws"]["defaults"]["firewall_rules"][0]["action"],
        "deny"
    );
    assert_eq!(v["servers"]["a"]["network"], json!({ "public_ip": true }));
    assert_eq!(
        v["servers"]["a"]["taskservs"]["t"]["settings"]["anything"],
        json!([1, 2])
    );
    assert_eq!(
        v["servers"]["a"]["taskservs"]["t"]["health_check"]["interval"],
        30
    );
    assert_eq!(v["clusters"]["c"]["name"], "ci");
    assert_eq!(v["clusters"]["c"]["implementation"], "k8s");
    assert_eq!(
        v["clusters"]["c"]["components"].as_array().unwrap().len(),
        3
    );
    assert_eq!(
        v["clusters"]["c"]["resources"],
        json!({ "min_nodes": 3, "cpu_per_node": "4", "memory_per_node": "8Gi", "storage_per_node": "100Gi" })
    );
    assert_eq!(v["clusters"]["c"]["features"]["ingress"], true);
    assert_eq!(
        v["clusters"]["c"]["description"],
        "Container build cluster with BuildKit and registry"
    );
}

#[test]
fn library_contracts_are_usable_directly() {
    let evaluated = eval_source(
        r#"let prov = import "prov/schemas.ncl" in
{
  outputs = {
    config = { hostname = "h", plan = "p", zone = "z" } | prov.ServerConfig,
    version = { source.repository = "org/repo", install.binary_name = "svc" } | prov.TaskservVersion,
    cluster = { name = "c", components = [] } | prov.ClusterConfig,
    component = { name = "x", type = 'infrastructure } | prov.Component,
    provider = {} | prov.ProviderSettings,
  },
}"#,
    )
    .unwrap();
    let o = &evaluated.value["outputs"];
    assert_eq!(o["config"]["os"], "ubuntu-22.04");
    assert_eq!(o["version"]["service"]["ports"], json!([8080, 9090]));
    assert_eq!(o["version"]["source"]["release_pattern"], "v{version}");
    assert_eq!(o["cluster"]["features"]["ingress"], false);
    assert_eq!(o["component"]["version"], "");
    assert_eq!(o["provider"], json!({}));

    let rendered = nickel_error(eval_source(
        "let prov = import \"prov/schemas.ncl\" in { outputs.x = { plan = \"p\", zone = \"z\" } | prov.ServerConfig }",
    ));
    assert_contains(&rendered, &["missing definition for `hostname`"]);
}

#[test]
fn library_is_materialized_and_repaired() {
    let dir = workspace("valid");
    evaluate(dir.path(), &EvalOptions::default()).unwrap();
    let lib = dir.path().join(".prov/lib");
    for (rel, contents) in schema_library() {
        assert_eq!(std::fs::read_to_string(lib.join(rel)).unwrap(), *contents);
    }
    // A stale or edited copy is rewritten.
    std::fs::write(lib.join("prov/schemas.ncl"), "{}").unwrap();
    evaluate(dir.path(), &EvalOptions::default()).unwrap();
    let (_, schemas) = schema_library()
        .iter()
        .find(|(rel, _)| *rel == "prov/schemas.ncl")
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(lib.join("prov/schemas.ncl")).unwrap(),
        *schemas
    );
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(lib.join("prov"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn concurrent_evaluations_of_one_workspace() {
    let dir = workspace("valid");
    let path = dir.path().to_path_buf();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let path = path.clone();
            std::thread::spawn(move || evaluate(&path, &EvalOptions::default()).map(|e| e.value))
        })
        .collect();
    let values: Vec<Value> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] == w[1]));
}

#[test]
fn trace_and_colors() {
    // std.trace writes to stderr and does not disturb the value.
    let evaluated = eval_source("{ outputs.x = std.trace \"tracing from main.ncl\" 42 }").unwrap();
    assert_eq!(evaluated.value["outputs"]["x"], 42);

    let dir = workspace("syntax_error");
    let opts = EvalOptions {
        color: true,
        ..EvalOptions::default()
    };
    match evaluate(dir.path(), &opts) {
        Err(ConfigError::Nickel { rendered }) => {
            assert!(rendered.contains('\u{1b}'), "{rendered}");
        }
        other => panic!("expected a Nickel error, got {other:?}"),
    }
}

#[test]
fn errors_render_for_humans() {
    let err = ConfigError::TooDeep {
        file: PathBuf::from("ws/main.ncl"),
        line: 3,
        column: 7,
        depth: 1001,
        limit: 1000,
    };
    assert_eq!(
        err.to_string(),
        "ws/main.ncl:3:7: configuration nested too deeply: depth 1001 exceeds the limit of 1000"
    );
    let err = ConfigError::TooLarge {
        bytes: 70_000_000,
        limit: 67_108_864,
    };
    assert_eq!(
        err.to_string(),
        "configuration too large: 70000000 bytes of Nickel source exceed the limit of 67108864"
    );
}

#[test]
fn default_options() {
    let opts = EvalOptions::default();
    assert_eq!(opts.max_depth, 1000);
    assert_eq!(opts.max_bytes, 64 << 20);
    assert!(!opts.color);
}

#[test]
fn unchanged_configuration_is_served_from_the_cache_and_edits_invalidate_it() {
    let ws = workspace("import_helper");
    let opts = EvalOptions::default();
    let first = evaluate(ws.path(), &opts).unwrap();
    let cache = ws.path().join(".prov/cache/eval.json");
    assert!(cache.is_file(), "the evaluation is cached");
    // The evaluated configuration holds provider settings (credentials): owner-only.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&cache).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let second = evaluate(ws.path(), &opts).unwrap();
    assert_eq!(
        first, second,
        "a cache hit gives the same value, positions and files"
    );

    // Editing an imported file (not main.ncl) changes the key: evaluated again.
    let helper = ws.path().join("lib/helpers.ncl");
    let text = std::fs::read_to_string(&helper).unwrap();
    std::fs::write(&helper, format!("{text}\n# edited\n")).unwrap();
    let before = std::fs::read(&cache).unwrap();
    let third = evaluate(ws.path(), &opts).unwrap();
    assert_eq!(first.value, third.value);
    assert_ne!(
        before,
        std::fs::read(&cache).unwrap(),
        "a new entry for the new inputs"
    );

    // A broken edit is an error, never a stale cached value.
    std::fs::write(&helper, "{ broken = ").unwrap();
    assert!(matches!(
        evaluate(ws.path(), &opts),
        Err(ConfigError::Nickel { .. })
    ));
    let no_cache = EvalOptions {
        cache: false,
        ..EvalOptions::default()
    };
    assert!(evaluate(ws.path(), &no_cache).is_err());
}

#[test]
fn fields_left_to_schema_defaults_are_told_apart_from_written_ones() {
    let src = r#"{
      servers = { web = { provider = "sim", plan = "small", zone = "a",
        taskservs = {
          quiet = { version = "1" },
          loud = { version = "1", on_error = 'Retry, max_retries = 3, settings = { a = 1 } },
        } } },
      clusters = { k = { name = "k", servers = ["web"], features = { ingress = true },
                         components = [{ name = "app", type = 'application }] } },
    }"#;
    let dir = workspace_with(src);
    let cached = EvalOptions {
        cache: true,
        ..EvalOptions::default()
    };
    for _ in 0..2 {
        // The second evaluation is a cache hit: the defaults come back with the value.
        let ev = evaluate(dir.path(), &cached).unwrap();
        let has = |p: &str| ev.defaults.contains(p);
        for p in [
            "servers.web.taskservs.quiet.on_error",
            "servers.web.taskservs.quiet.max_retries",
            "servers.web.taskservs.quiet.settings",
            "clusters.k.features.logging",
            "clusters.k.network",
            "clusters.k.components.app.config",
            "clusters.k.components.app.enabled",
        ] {
            assert!(has(p), "{p} should be a default: {:?}", ev.defaults);
        }
        for p in [
            "servers.web.taskservs.quiet.version",
            "servers.web.taskservs.loud.on_error",
            "servers.web.taskservs.loud.max_retries",
            "servers.web.taskservs.loud.settings",
            "clusters.k.features",
            "clusters.k.features.ingress",
            "clusters.k.components.app.type",
        ] {
            assert!(!has(p), "{p} was written: {:?}", ev.defaults);
        }
        assert!(dir.path().join(".prov/cache/eval.json").is_file());
    }
}

/// Evaluates `source` three ways — read as plain data where it is (`EvalOptions::plain_data`),
/// evaluated by Nickel with the `Workspace` contract checked in Rust (when it can), and with
/// Nickel's contract alone — and asserts all give the same: value, positions, defaulted fields
/// and hash, or the same diagnostic. Returns how the first one was checked.
fn parity(source: &str) -> ContractCheck {
    let dir = workspace_with(source);
    let run = |rust_check: bool, plain_data: bool| {
        let opts = EvalOptions {
            cache: false,
            rust_check,
            plain_data,
            ..EvalOptions::default()
        };
        evaluate_with_report(dir.path(), &opts)
    };
    let nickel = run(false, false);
    let rust = run(true, false);
    if let Ok((_, how)) = &rust {
        assert_ne!(*how, ContractCheck::PlainData);
    }
    same(source, rust, &nickel);
    same(source, run(true, true), &nickel)
}

/// `a` (checked in Rust where it could be) and `b` (Nickel's contract) agree.
fn same(
    source: &str,
    a: Result<(Evaluated, ContractCheck), ConfigError>,
    b: &Result<(Evaluated, ContractCheck), ConfigError>,
) -> ContractCheck {
    match (a, b) {
        (Ok((a, how)), Ok((b, ContractCheck::Nickel))) => {
            assert_eq!(a.value, b.value, "values differ for:\n{source}");
            assert_eq!(a.hash, b.hash, "key order or numbers differ for:\n{source}");
            assert_eq!(
                a.defaults, b.defaults,
                "defaulted fields differ for:\n{source}"
            );
            assert_eq!(a.positions, b.positions, "positions differ for:\n{source}");
            assert_eq!(a.files, b.files);
            how
        }
        (Err(a), Err(b)) => {
            assert_eq!(
                a.to_string(),
                b.to_string(),
                "diagnostics differ for:\n{source}"
            );
            ContractCheck::Nickel
        }
        (a, b) => panic!(
            "one accepted, one refused:\n{source}\nchecked in Rust: {:?}\nNickel alone: {:?}",
            a.map(|(e, _)| e.value),
            b.as_ref().map(|(e, _)| &e.value)
        ),
    }
}

/// Every field of every record of the schema, given and left to its default.
const SCHEMA_COMPLETE: &[&str] = &[
    "{}",
    r#"{ backend = { type = "pg", conn = "postgres://x@y/z", pool = 4 } }"#,
    r#"{ providers = {
      aws = {
        region = "eu-west-1",
        auth = { method = 'api_key, api_key = "k", api_secret = "s", username = "u",
                 password = "p", certificate_path = "/c", private_key_path = "/k" },
        api = { base_url = "https://x" },
        defaults = { plan = "p", zone = "z", os = "o", ssh_keys = ["a"],
                     firewall_rules = [{ direction = 'egress, protocol = 'icmp, action = 'deny }] },
        features = { backup = false },
      },
      up = { auth.method = 'oauth, api = { base_url = "b", version = "v2", timeout = 2.5, retries = 0 },
             features = { load_balancer = true, storage_encryption = false, backup = true, monitoring = true } },
      sim = {},
    } }"#,
    r#"{ servers = {
      full = {
        provider = "sim", hostname = "h", plan = "small", zone = "z", os = "debian",
        ssh_keys = ["k1", "k2"], tags = { a = "1", b = "${server.other.private_ip}" },
        firewall_rules = [
          { direction = 'ingress, protocol = 'tcp, port = "22", source = "0.0.0.0/0", action = 'allow },
          { direction = 'egress, protocol = 'udp, port = "8000-8100", destination = "10.0.0.0/8", action = 'deny },
        ],
        storage = { size = 10, type = "ssd", encrypted = false },
        network = { public_ip = false, private_network = "n", bandwidth = 100 },
        depends_on = ["server.other"],
        lifecycle = { prevent_destroy = true, create_before_destroy = true, ignore_changes = ["tags"] },
        sensitive = ["tags.a"],
        taskservs = {
          all = { version = "1", implementation = "exec", settings = { x = [1, { y = 'z }] },
                  depends_on = ["a", { name = "b", kind = 'PrefersBefore }, { name = "c" }],
                  on_error = 'Retry, max_retries = 2,
                  health_check = { endpoint = "/h", command = "true", expect = "ok",
                                   interval = 1.5, timeout = 0, retries = 1 },
                  lifecycle = { prevent_destroy = true }, sensitive = ["settings.x"] },
          none = {},
          checked = { health_check = {} },
        },
      },
      other = { provider = "sim", storage = {}, network = {}, lifecycle = {}, taskservs = {} },
    } }"#,
    r#"{ clusters = {
      all = { version = "2", description = "d", name = "n", implementation = "i",
              servers = ["a"], on_error = 'rollback, depends_on = ["cluster.b"],
              lifecycle = { ignore_changes = ["x"] },
              resources = { min_nodes = 2, cpu_per_node = "8" },
              network = { dns_domain = "x.local" },
              features = { ingress = true },
              components = [
                { name = "c1", type = 'taskserv, version = "1", enabled = false,
                  dependencies = ["c2"], config = { a = 1 }, resources = { cpu = "1", replicas = 3 } },
                { name = "c2", type = 'infrastructure },
              ] },
      b = { components = [] },
    } }"#,
    r#"{ outputs = { n = 1, f = 0.5, big = 12345678901234, neg = -3, s = "x", e = 'tag,
                     a = [1, "two", { three = 3 }], r = { deep = { deeper = [null, true] } } } }"#,
    // Written through the library's own contracts: defaults arrive at the default priority.
    r#"let prov = import "prov/schemas.ncl" in
    { servers = { a = { provider = "sim", storage.size = 1, network = {},
                        taskservs.t = { health_check = {} } } } | { _ | prov.Server },
      providers.sim = {} | prov.ProviderSettings }"#,
    // Generated by functions that read only their own arguments.
    r#"{ servers = std.record.from_array (std.array.map
         (fun i => { field = "s%{std.to_string i}", value = { provider = "sim", tags.n = std.to_string i } })
         (std.array.range 0 5)) }"#,
    // Declared without a value, optional: absent.
    r#"{ servers.a = { provider = "sim", plan | String | optional } }"#,
];

/// Valid workspaces that the Rust check must leave to Nickel's contract.
const NICKEL_DECIDES: &[&str] = &[
    // Reads its own fields: the contract's default (`encrypted`) is visible to it.
    r#"{ servers.web = { provider = "sim", storage.size = 1 }, outputs.st = servers.web.storage }"#,
    r#"{ servers = { a = { provider = "sim" }, b = a & { plan = "x" } } }"#,
    // Not exported: the contract's default does not fill it.
    r#"{ servers.a = { provider = "sim", storage = { encrypted | not_exported = false } } }"#,
    // A workspace default beside the contract's, other than it.
    r#"{ clusters.c = { components = [], version | default = "3" } }"#,
    // Needs a contract default to evaluate.
    r#"{ clusters.c = { components = [], description = "v%{version}" } }"#,
];

/// Plain data (module `config::data`): read without Nickel, every way Nickel reads it.
const PLAIN_DATA: &[&str] = &[
    // Quoted names, names after non-ASCII text, comments, CRLF line ends, escapes, numbers.
    "# généré\r\n{\r\n  servers = {\r\n    \"wéb-01\" = { provider = \"sim\", tags = { \"a b\" = \"é\\\"\\\\\\%\\t%x\" } }, # ü\r\n    web_02' = { provider = \"sim\", storage = { size = 1e2 } },\r\n  },\r\n}\r\n",
    r#"{ servers = { a = { provider = "sim" } }, outputs = { n = 1.0, m = -0, f = 0.1, g = 2.5e-3, h = 1.25e2, i = -7.5, big = 18446744073709551615, bigger = 18446744073709551616, neg = -9223372036854775808 } }"#,
    // Piecewise definitions (dotted paths, a section twice) merge.
    r#"{
  servers.a.provider = "sim",
  servers.a.plan = "small",
  servers.b = { provider = "sim", taskservs.t1 = {} },
  servers.b.taskservs.t2.version = "1",
  providers.sim = {},
  clusters.c = { components = [
    { name = "x", type = 'taskserv },
      {
        type = 'application, name = "y" },
  ] },
}"#,
    // The bench's shape (bench/run --gen prov).
    r#"{
  providers = { sim = {  } },
  servers = {
    s0 = { provider = "sim", plan = "small", zone = "sim-a", ssh_keys = ["k0", "shared"], tags = { index = "0", role = "bench", team = "t0", rev = "1" }, storage = { size = 10 }, network = { bandwidth = 100 } },
    s10 = { provider = "sim", plan = "medium", zone = "sim-a", ssh_keys = ["k10", "shared"], tags = { index = "10", role = "bench", team = "t3", rev = "1", dep = "${server.s0.private_ip}" }, storage = { size = 10 }, network = { bandwidth = 300 } },
  },
}"#,
];

#[test]
fn workspace_contract_in_rust_matches_nickel() {
    for source in PLAIN_DATA {
        assert_eq!(
            parity(source),
            ContractCheck::PlainData,
            "read as plain data:\n{source}"
        );
    }
    for source in SCHEMA_COMPLETE {
        assert!(
            matches!(
                parity(source),
                ContractCheck::Rust | ContractCheck::PlainData
            ),
            "checked in Rust:\n{source}"
        );
    }
    for source in NICKEL_DECIDES {
        assert_eq!(
            parity(source),
            ContractCheck::Nickel,
            "left to Nickel:\n{source}"
        );
    }
    // The self-reference sees the default, as with Nickel's contract.
    let ev = eval_source(NICKEL_DECIDES[0]).unwrap();
    assert_eq!(
        ev.value["outputs"]["st"],
        json!({ "size": 1, "encrypted": true })
    );
    for (source, _) in SCHEMA_VIOLATIONS {
        parity(source);
    }
    // Mistakes the exported JSON alone cannot show, and more of the schema's checks.
    for source in [
        r#"{ servers.a = { provider = "sim", firewall_rules = [{ direction = "ingress", protocol = 'tcp, action = 'allow }] } }"#,
        r#"{ servers.a = { provider = "sim", plan = 'small } }"#,
        r#"{ servers.a = { provider = "sim", tags.x = 'y } }"#,
        r#"{ servers.a = { provider = "sim", tags.x = 1 } }"#,
        r#"{ servers.a = { provider = "sim", ssh_keys = "k" } }"#,
        r#"{ servers.a = { provider = "sim", firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = "22-21", action = 'allow }] } }"#,
        r#"{ servers.a = { provider = "sim", firewall_rules = [{ direction = 'ingress, protocol = 'tcp, port = "ssh", action = 'allow }] } }"#,
        r#"{ servers.a = { provider = "sim", taskservs.t.health_check.interval = -1 } }"#,
        r#"{ servers.a = { provider = "sim", taskservs.t.settings = [1] } }"#,
        r#"{ servers.a = { provider = "sim", taskservs.t.depends_on = [{ kind = 'Requires }] } }"#,
        r#"{ servers.a = { provider = "sim", storage.encrypted | default = false } }"#,
        r#"{ servers.a = { provider = 1 } }"#,
        r#"{ servers.a = "web" }"#,
        r#"{ servers = [] }"#,
        r#"{ providers.p.auth = { method = 'basic, token = "t" } }"#,
        r#"{ providers.p.features.backup = "yes" }"#,
        r#"{ clusters.c = { components = [{ name = "x", type = 'taskserv, replicas = 2 }] } }"#,
        r#"{ clusters.c = { components = [], on_error = 'stop, servers = "a" } }"#,
        r#"{ backend.conn = 5 }"#,
        r#"{ servers.a = { provider = "sim", hostname | not_exported = 5 } }"#,
        "{ servers.a = { provider = \"sim\" }, extra = 1 }",
        "[1, 2]",
    ] {
        parity(source);
    }
}
