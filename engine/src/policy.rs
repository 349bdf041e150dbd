//! Policy checks: Rego policies evaluated over a JSON document (a Terraform-shaped plan) with conftest's conventions, on the `regorus` interpreter.
//!
//! Conventions (conftest's, so the same policy directory runs unchanged under `conftest test`):
//! rules named `deny`, `violation` (failures) and `warn` (warnings), alone or with `_suffix`es
//! (`deny_public_ip`), in package `main` unless namespaces are named; each result is a string
//! or an object with a string `msg` (the other keys are metadata); `exception` rules list rule
//! names (without the `deny_`/`violation_` prefix) whose results become exceptions. `.rego`
//! files are read from the policy paths recursively (`*_test.rego` left out), `.json`/`.yaml`
//! files from the data paths become `data` under their directory's path, as OPA loads them.
//!
//! Nothing here runs programs or reaches the network: regorus's `http.send` is a stub and its
//! `opa.runtime()` carries no environment (conftest's does), which matters when a pull
//! request brings its own policies (docs/ci-security.md).

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What to load and which namespaces to check.
#[derive(Clone, Debug, Default)]
pub struct PolicyOptions {
    /// `.rego` files or directories searched recursively.
    pub policy_paths: Vec<PathBuf>,
    /// `.json`/`.yaml`/`.yml` files or directories loaded as `data`.
    pub data_paths: Vec<PathBuf>,
    /// Packages whose rules are checked; empty: `main`.
    pub namespaces: Vec<String>,
    /// Check every package the policies declare.
    pub all_namespaces: bool,
    /// Parse policies as Rego v0 (OPA before 1.0: `deny[msg] { ... }` without `if`/`contains`).
    pub rego_v0: bool,
}

/// The namespace checked when none is named (conftest's default).
pub const DEFAULT_NAMESPACE: &str = "main";

/// One result of a failing or warning rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Finding {
    #[serde(rename = "msg")]
    pub message: String,
    /// The result object's other keys (`violation` rules returning `{"msg": ..., "details": ...}`).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The rule that produced it (`deny`, `warn_tags`, ...).
    pub rule: String,
    /// The policy files that define that rule in this namespace.
    pub policies: Vec<String>,
}

/// The verdict of one namespace, counted as conftest counts it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct NamespaceResult {
    pub namespace: String,
    /// Rule definitions that produced nothing.
    pub successes: usize,
    pub failures: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// Results an `exception` rule excused (message: the exception query, as conftest shows it).
    pub exceptions: Vec<Finding>,
}

/// Every checked namespace, in order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub results: Vec<NamespaceResult>,
    /// The policy files loaded, in load order.
    pub policy_files: Vec<PathBuf>,
}

impl Report {
    pub fn failures(&self) -> usize {
        self.results.iter().map(|r| r.failures.len()).sum()
    }
    pub fn warnings(&self) -> usize {
        self.results.iter().map(|r| r.warnings.len()).sum()
    }
    pub fn exceptions(&self) -> usize {
        self.results.iter().map(|r| r.exceptions.len()).sum()
    }
    pub fn successes(&self) -> usize {
        self.results.iter().map(|r| r.successes).sum()
    }
    /// conftest's exit code: 1 on failures; with `fail_on_warn` 2 on failures, 1 on warnings.
    pub fn exit_code(&self, fail_on_warn: bool) -> u8 {
        match (self.failures() > 0, self.warnings() > 0, fail_on_warn) {
            (true, _, true) => 2,
            (true, _, false) => 1,
            (false, true, true) => 1,
            _ => 0,
        }
    }
}

/// A policy that cannot be loaded or evaluated: names the file (and line, from the parser).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn err(s: impl Into<String>) -> PolicyError {
    PolicyError(s.into())
}

fn is_failure(rule: &str) -> bool {
    rule_kind(rule) == Some(false)
}

/// `Some(false)` for a failure rule (`deny`, `violation`, with `_suffix`es), `Some(true)` for a
/// warning (`warn...`), None for any other rule. conftest: `^(deny|violation)(_[a-zA-Z0-9]+)*$`
/// and `^warn(_[a-zA-Z0-9]+)*$`.
fn rule_kind(rule: &str) -> Option<bool> {
    let suffix_ok = |rest: &str| {
        rest.is_empty()
            || rest.strip_prefix('_').is_some_and(|r| {
                r.split('_')
                    .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()))
            })
    };
    for (prefix, warn) in [("deny", false), ("violation", false), ("warn", true)] {
        if let Some(rest) = rule.strip_prefix(prefix) {
            if suffix_ok(rest) {
                return Some(warn);
            }
        }
    }
    None
}

/// The rule name an `exception` lists for a rule (conftest drops `deny_`/`violation_`).
fn exception_name(rule: &str) -> &str {
    rule.strip_prefix("deny_")
        .or_else(|| rule.strip_prefix("violation_"))
        .unwrap_or(rule)
}

/// Files under `path` (or `path` itself) whose name passes `keep`, sorted for a stable order.
fn files(
    path: &Path,
    keep: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result<(), PolicyError> {
    let meta = std::fs::metadata(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    if meta.is_file() {
        // A named file counts for what it is: a policy path may name one .rego file, which is
        // then no data file.
        if keep(path) {
            out.push(path.to_path_buf());
        }
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| err(format!("{}: {e}", path.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        // Hidden files and directories (.git, editor swap files) are not policies.
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
        {
            continue;
        }
        if p.is_dir() {
            files(&p, keep, out)?;
        } else if keep(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn ext_of(p: &Path) -> &str {
    p.extension().and_then(|e| e.to_str()).unwrap_or("")
}

/// Loads the data files of `root` (a directory: each file's content goes under its
/// subdirectory's path, as OPA's loader does; a file: at the root of `data`).
fn load_data(engine: &mut regorus::Engine, root: &Path) -> Result<(), PolicyError> {
    let mut found = Vec::new();
    let keep = |p: &Path| matches!(ext_of(p), "json" | "yaml" | "yml");
    files(root, &keep, &mut found)?;
    for f in found {
        let text = std::fs::read_to_string(&f).map_err(|e| err(format!("{}: {e}", f.display())))?;
        let value: Value = match ext_of(&f) {
            "json" => serde_json::from_str(&text).map_err(|e| {
                err(format!(
                    "data file {}:{}:{}: {e}",
                    f.display(),
                    e.line(),
                    e.column()
                ))
            })?,
            _ => {
                let v = regorus::Value::from_yaml_str(&text)
                    .map_err(|e| err(format!("data file {}: {e}", f.display())))?;
                let json = v
                    .to_json_str()
                    .map_err(|e| err(format!("data file {}: {e}", f.display())))?;
                serde_json::from_str(&json)
                    .map_err(|e| err(format!("data file {}: {e}", f.display())))?
            }
        };
        let dir = f.parent().unwrap_or(Path::new(""));
        let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
        let mut doc = value;
        for part in rel.components().rev() {
            let mut m = Map::new();
            m.insert(part.as_os_str().to_string_lossy().into_owned(), doc);
            doc = Value::Object(m);
        }
        if !doc.is_object() {
            return Err(err(format!(
                "data file {}: the top level must be an object (it becomes `data`)",
                f.display()
            )));
        }
        let v = regorus::Value::from_json_str(&doc.to_string())
            .map_err(|e| err(format!("data file {}: {e}", f.display())))?;
        engine.add_data(v).map_err(|e| {
            // regorus quotes both conflicting values whole: the start says enough.
            let msg = e.to_string();
            let short: String = msg.chars().take(200).collect();
            let more = if short.len() < msg.len() { "…" } else { "" };
            err(format!(
                "data file {}: {short}{more} (another data file sets the same key)",
                f.display()
            ))
        })?;
    }
    Ok(())
}

/// The rules a policy file defines: (namespace, rule name) -> number of definitions.
fn declared_rules(engine: &mut regorus::Engine) -> Vec<(String, String)> {
    use regorus::unstable::{Parser, Rule, RuleHead};
    // regorus exposes rule heads only through its `unstable` AST (pinned by Cargo.lock); the
    // package comes from `add_policy` instead, so only the first component of each head is read.
    let mut out = Vec::new();
    for module in engine.get_modules() {
        let file = module.package.span.source.get_path().clone();
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                },
                Rule::Default { refr, .. } => refr,
            };
            if let Some(first) = Parser::get_path_ref_components(refr)
                .ok()
                .and_then(|c| c.first().map(|s| s.text().to_string()))
            {
                out.push((file.clone(), first));
            }
        }
    }
    out
}

/// One result: its message and the other keys of its object.
type Produced = (String, Map<String, Value>);

/// The policy results of one rule's value: strings and `{msg, ...}` objects; anything else
/// (a boolean `deny`, an empty set) is no result, as in conftest.
fn results_of(value: &regorus::Value, rule: &str, ns: &str) -> Result<Vec<Produced>, PolicyError> {
    if matches!(value, regorus::Value::Undefined) {
        return Ok(Vec::new());
    }
    let json = value
        .to_json_str()
        .map_err(|e| err(format!("data.{ns}.{rule}: {e}")))?;
    let v: Value =
        serde_json::from_str(&json).map_err(|e| err(format!("data.{ns}.{rule}: {e}")))?;
    let items = match v {
        Value::Array(a) => a,
        _ => return Ok(Vec::new()),
    };
    let mut out = Vec::new();
    for item in items {
        match item {
            Value::String(s) => out.push((s, Map::new())),
            Value::Object(mut m) => match m.remove("msg") {
                Some(Value::String(s)) => out.push((s, m)),
                Some(other) => {
                    return Err(err(format!(
                        "data.{ns}.{rule}: the `msg` of a result must be a string, got {other}"
                    )))
                }
                None => {
                    return Err(err(format!(
                        "data.{ns}.{rule}: a result object needs a `msg` key: {}",
                        Value::Object(m)
                    )))
                }
            },
            _ => {}
        }
    }
    Ok(out)
}

/// Loads the policies and data, and checks `input` against the selected namespaces.
pub fn check(input: &Value, opts: &PolicyOptions) -> Result<Report, PolicyError> {
    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(opts.rego_v0);
    let (policy_files, packages) = load_policies(&mut engine, opts)?;
    for p in &opts.data_paths {
        load_data(&mut engine, p)?;
    }
    let input_value = regorus::Value::from_json_str(&input.to_string())
        .map_err(|e| err(format!("the input document: {e}")))?;
    engine.set_input(input_value);
    let rules = rule_table(&mut engine, &packages);
    let mut declared: Vec<String> = packages.values().cloned().collect();
    declared.sort();
    declared.dedup();
    let namespaces = namespaces(opts, &declared, &rules)?;
    let mut results = Vec::new();
    for ns in namespaces {
        results.push(evaluate_namespace(&mut engine, ns, &rules)?);
    }
    Ok(Report {
        results,
        policy_files,
    })
}

/// The policy paths as a message lists them.
fn listed_paths(opts: &PolicyOptions) -> String {
    opts.policy_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Loads every policy file into `engine`; returns the files and each one's package (file ->
/// package, as loaded).
fn load_policies(
    engine: &mut regorus::Engine,
    opts: &PolicyOptions,
) -> Result<(Vec<PathBuf>, BTreeMap<String, String>), PolicyError> {
    let mut policy_files = Vec::new();
    let keep = |p: &Path| ext_of(p) == "rego" && !p.to_string_lossy().ends_with("_test.rego");
    for p in &opts.policy_paths {
        files(p, &keep, &mut policy_files).map_err(|e| err(format!("policy path {}", e.0)))?;
    }
    if policy_files.is_empty() {
        return Err(err(format!(
            "no policies found in {} (looked for .rego files)",
            listed_paths(opts)
        )));
    }
    let mut packages: BTreeMap<String, String> = BTreeMap::new();
    for f in &policy_files {
        let text = std::fs::read_to_string(f).map_err(|e| err(format!("{}: {e}", f.display())))?;
        let name = f.display().to_string();
        let package = engine.add_policy(name.clone(), text).map_err(|e| {
            let hint = if opts.rego_v0 {
                ""
            } else {
                "\n(policies are read as Rego v1, as OPA 1.x and conftest do; pass --rego-version v0 for policies written for older OPA)"
            };
            err(format!("policy {name}: {e}{hint}"))
        })?;
        packages.insert(name, package.trim_start_matches("data.").to_string());
    }
    Ok((policy_files, packages))
}

/// The deny/violation/warn rules: (namespace, rule) -> (how many definitions, in which files).
type Rules = BTreeMap<(String, String), (usize, Vec<String>)>;

fn rule_table(engine: &mut regorus::Engine, packages: &BTreeMap<String, String>) -> Rules {
    let mut rules = Rules::new();
    for (file, rule) in declared_rules(engine) {
        if rule_kind(&rule).is_none() {
            continue;
        }
        let Some(ns) = packages.get(&file) else {
            continue;
        };
        let e = rules.entry((ns.clone(), rule)).or_default();
        e.0 += 1;
        if !e.1.contains(&file) {
            e.1.push(file);
        }
    }
    rules
}

/// The namespaces to check; an error when one of them (or the default) has no rules.
fn namespaces(
    opts: &PolicyOptions,
    declared: &[String],
    rules: &Rules,
) -> Result<Vec<String>, PolicyError> {
    let with_rules = |ns: &str| rules.keys().any(|(n, _)| n == ns);
    let namespaces: Vec<String> = if opts.all_namespaces {
        // Packages without deny/warn/violation rules are helper libraries.
        declared
            .iter()
            .filter(|ns| with_rules(ns))
            .cloned()
            .collect()
    } else if opts.namespaces.is_empty() {
        vec![DEFAULT_NAMESPACE.to_string()]
    } else {
        let mut v = opts.namespaces.clone();
        v.dedup();
        v
    };
    // A check that checked nothing is not a pass: a misspelt namespace or a policy in another
    // package than the one asked for would otherwise let every plan through.
    let empty: Vec<&str> = namespaces
        .iter()
        .map(String::as_str)
        .filter(|ns| !with_rules(ns))
        .collect();
    if !namespaces.is_empty() && empty.is_empty() {
        return Ok(namespaces);
    }
    let what = if namespaces.is_empty() {
        "any package".to_string()
    } else {
        format!("package {}", empty.join(", "))
    };
    let hint = if opts.all_namespaces || !opts.namespaces.is_empty() {
        ""
    } else {
        " (pass --namespace NAME or --all-namespaces)"
    };
    Err(err(format!(
        "no deny, violation or warn rules in {what} of the policies in {}; their packages: {}{hint}",
        listed_paths(opts),
        declared.join(", ")
    )))
}

/// Evaluates the rules of one namespace, with conftest's counts.
fn evaluate_namespace(
    engine: &mut regorus::Engine,
    ns: String,
    rules: &Rules,
) -> Result<NamespaceResult, PolicyError> {
    let mut r = NamespaceResult {
        namespace: ns.clone(),
        ..Default::default()
    };
    for ((_, rule), (count, files)) in rules.iter().filter(|((n, _), _)| *n == ns) {
        let (excused, exception_query) = excused(engine, &ns, rule)?;
        let value = engine.eval_rule(format!("data.{ns}.{rule}")).map_err(|e| {
            err(format!(
                "evaluating data.{ns}.{rule} ({}): {e}",
                files.join(", ")
            ))
        })?;
        let found = results_of(&value, rule, &ns)?;
        let finding = |(message, metadata): (String, Map<String, Value>)| Finding {
            message,
            metadata,
            rule: rule.clone(),
            policies: files.clone(),
        };
        let produced = if excused {
            r.exceptions.push(finding((exception_query, Map::new())));
            1
        } else if is_failure(rule) {
            let n = found.len();
            r.failures.extend(found.into_iter().map(finding));
            n
        } else {
            let n = found.len();
            r.warnings.extend(found.into_iter().map(finding));
            n
        };
        // conftest: one success per definition beyond the results it produced (a rule
        // defined twice that found nothing is two passed tests).
        r.successes += count
            .saturating_sub(produced)
            .max(usize::from(produced == 0));
    }
    Ok(r)
}

/// Whether the namespace's `exception` rule excuses `rule`, and the query that asked.
fn excused(
    engine: &mut regorus::Engine,
    ns: &str,
    rule: &str,
) -> Result<(bool, String), PolicyError> {
    let query = format!(
        "data.{ns}.exception[_][_] == {}",
        Value::String(exception_name(rule).to_string())
    );
    let excused = engine
        .eval_query(query.clone(), false)
        .map_err(|e| err(format!("evaluating data.{ns}.exception: {e}")))?
        .result
        .iter()
        .any(|q| {
            q.expressions
                .iter()
                .all(|x| x.value == regorus::Value::Bool(true))
        });
    Ok((excused, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_names_follow_conftest() {
        assert_eq!(rule_kind("deny"), Some(false));
        assert_eq!(rule_kind("violation_public_ip"), Some(false));
        assert_eq!(rule_kind("deny_a_b2"), Some(false));
        assert_eq!(rule_kind("warn"), Some(true));
        assert_eq!(rule_kind("warn_tags"), Some(true));
        assert_eq!(rule_kind("denied"), None);
        assert_eq!(rule_kind("deny_"), None);
        assert_eq!(rule_kind("deny__x"), None);
        assert_eq!(rule_kind("allow"), None);
        assert_eq!(exception_name("deny_public"), "public");
        assert_eq!(exception_name("warn_public"), "warn_public");
    }

    #[test]
    fn exit_codes_follow_conftest() {
        let finding = Finding {
            message: "m".into(),
            metadata: Map::new(),
            rule: "deny".into(),
            policies: vec![],
        };
        let mut r = Report {
            results: vec![NamespaceResult::default()],
            policy_files: vec![],
        };
        assert_eq!((r.exit_code(false), r.exit_code(true)), (0, 0));
        r.results[0].warnings.push(finding.clone());
        assert_eq!((r.exit_code(false), r.exit_code(true)), (0, 1));
        r.results[0].failures.push(finding);
        assert_eq!((r.exit_code(false), r.exit_code(true)), (1, 2));
    }
}
