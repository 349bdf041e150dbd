//! `prov extension validate`: the seed's five validation rules (structure, schema, interface,
//! dependency, version) plus documents, as typed findings naming the file, line and rule. The
//! engine checks what every kind shares; what only an implementing crate can judge (its manifest
//! section, an exec provider's `info`) comes in through [`Support`]. The CLI renders the report.

use super::{read_manifest, Dependency, Extension, ExtensionError, ExtensionKind, Origin};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The rule a finding belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Rule {
    Structure,
    Schema,
    Interface,
    Dependency,
    Version,
    Documents,
}

impl Rule {
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Structure => "structure",
            Rule::Schema => "schema",
            Rule::Interface => "interface",
            Rule::Dependency => "dependency",
            Rule::Version => "version",
            Rule::Documents => "documents",
        }
    }
}

/// Errors always fail validation; warnings fail it with `--strict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule: Rule,
    pub severity: Severity,
    /// The file concerned (absent: the extension as a whole).
    pub file: Option<PathBuf>,
    pub line: Option<u32>,
    pub message: String,
}

impl Finding {
    pub fn error(rule: Rule, file: Option<PathBuf>, message: impl Into<String>) -> Finding {
        Finding {
            rule,
            severity: Severity::Error,
            file,
            line: None,
            message: message.into(),
        }
    }
    pub fn warning(rule: Rule, file: Option<PathBuf>, message: impl Into<String>) -> Finding {
        Finding {
            severity: Severity::Warning,
            ..Finding::error(rule, file, message)
        }
    }
    pub fn at(mut self, line: Option<u32>) -> Finding {
        self.line = line;
        self
    }
    /// A Nickel diagnostic: the first `FILE.ncl:LINE:COL` it points at becomes file and line.
    pub fn nickel(rule: Rule, fallback: &Path, message: String) -> Finding {
        let (file, line) = nickel_location(&message).unwrap_or((fallback.to_path_buf(), None));
        Finding::error(rule, Some(file), message).at(line)
    }
}

/// The first `PATH.ncl:LINE:COL` of a Nickel diagnostic that is not a temporary check file.
fn nickel_location(message: &str) -> Option<(PathBuf, Option<u32>)> {
    for (i, _) in message.match_indices(".ncl:") {
        let start = message[..i]
            .rfind(|c: char| c.is_whitespace() || c == '(' || c == '"')
            .map_or(0, |s| s + 1);
        let file = &message[start..i + 4];
        // The check's own files and prov's library: the extension's file is further on.
        if file.contains("prov-snippet-")
            || file.contains("prov-check-")
            || file.contains("prov-lib-")
        {
            continue;
        }
        let line = message[i + 5..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|l| l.parse().ok());
        return Some((PathBuf::from(file), line));
    }
    None
}

/// What one validation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub dir: PathBuf,
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<ExtensionKind>,
    pub version: Option<String>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }
    pub fn warnings(&self) -> usize {
        self.findings.len() - self.errors()
    }
    /// Passes: no errors, and with `strict` no warnings either.
    pub fn passed(&self, strict: bool) -> bool {
        self.errors() == 0 && (!strict || self.warnings() == 0)
    }
}

/// What only the crate implementing a kind can check (its manifest section, an exec
/// provider's `info` and declared operations). Findings use [`Rule::Interface`] or
/// [`Rule::Structure`].
pub trait Support {
    fn interface(&self, ext: &Extension) -> Vec<Finding>;
    /// Renders the template file `template` with `ctx` the way the implementing crate does at
    /// apply (unit tests compare the result with an expected file).
    fn render(
        &self,
        _ext: &Extension,
        template: &Path,
        _ctx: &serde_json::Value,
    ) -> Result<String, String> {
        Err(format!(
            "{}: no template renderer for this kind",
            template.display()
        ))
    }
}

/// A [`Support`] that checks nothing beyond the engine's rules.
pub struct NoSupport;
impl Support for NoSupport {
    fn interface(&self, _: &Extension) -> Vec<Finding> {
        Vec::new()
    }
}

/// The scripts a taskserv must have (the seed's install/uninstall/configure/status; restart,
/// upgrade and version fall back to these).
pub const TASKSERV_SCRIPTS: &[&str] = &["install", "uninstall", "configure", "status"];
/// The scripts a cluster's application/infrastructure component must have.
pub const COMPONENT_SCRIPTS: &[&str] = &["deploy", "remove", "status", "configure"];
/// The operations an exec provider's `info` must declare (the seed's core operations).
pub const PROVIDER_OPERATIONS: &[&str] = &[
    "create-server",
    "delete-server",
    "list-servers",
    "get-server-info",
    "start-server",
    "stop-server",
    "reboot-server",
];
/// The documents every extension ships (the seed's "Documentation Requirements").
pub const DOCUMENTS: &[&str] = &["README.md", "API.md", "EXAMPLES.md", "CHANGELOG.md"];
/// The sections of the seed's API documentation template that API.md must have.
pub const API_SECTIONS: &[&str] = &["Overview", "Configuration", "API Reference"];

/// Validates the extension in `dir`. `expected` (`--type`) must match its manifest; `known` are
/// the extensions dependencies may name (every kind, precedence winners: see
/// `super::discover`).
pub fn validate(
    dir: &Path,
    expected: Option<ExtensionKind>,
    known: &[Extension],
    support: &dyn Support,
) -> Report {
    let mut report = Report {
        dir: dir.to_path_buf(),
        name: None,
        kind: expected,
        version: None,
        findings: Vec::new(),
    };
    let manifest = dir.join("manifest.toml");
    if !dir.is_dir() {
        report.findings.push(Finding::error(
            Rule::Structure,
            Some(dir.to_path_buf()),
            "not a directory",
        ));
        return report;
    }
    if !manifest.is_file() {
        report.findings.push(Finding::error(
            Rule::Structure,
            Some(manifest),
            "missing: every extension has a manifest.toml ([extension] name, type, version)",
        ));
        return report;
    }
    let text = std::fs::read_to_string(&manifest).unwrap_or_default();
    let ext = match read_manifest(dir, None) {
        Ok(e) if expected.is_some_and(|k| k != e.manifest.extension.kind) => {
            report.findings.push(
                Finding::error(
                    Rule::Structure,
                    Some(manifest),
                    format!(
                        "type is {:?}, but {:?} was asked for",
                        e.manifest.extension.kind.as_str(),
                        expected.map_or("", ExtensionKind::as_str)
                    ),
                )
                .at(line_of(&text, "type")),
            );
            return report;
        }
        Ok(e) => e,
        Err(ExtensionError::Manifest { path, message }) => {
            let line = message
                .strip_prefix("line ")
                .and_then(|r| r.split(':').next())
                .and_then(|l| l.parse().ok());
            report
                .findings
                .push(Finding::error(Rule::Structure, Some(path), message).at(line));
            return report;
        }
        Err(e) => {
            report.findings.push(Finding::error(
                Rule::Structure,
                Some(manifest),
                e.to_string(),
            ));
            return report;
        }
    };
    let meta = &ext.manifest.extension;
    report.name = Some(ext.name.to_string());
    report.kind = Some(meta.kind);
    report.version = Some(meta.version.clone());
    let f = &mut report.findings;
    structure(&ext, f);
    schema(&ext, &text, f);
    interface(&ext, f);
    f.extend(support.interface(&ext));
    dependency(&ext, &text, known, true, f);
    version(&ext, &text, f);
    documents(&ext, f);
    f.sort_by(|a, b| {
        (a.severity, a.rule, &a.file, a.line).cmp(&(b.severity, b.rule, &b.file, b.line))
    });
    report
}

/// The first line of `text` containing `needle` (1-based).
pub fn line_of(text: &str, needle: &str) -> Option<u32> {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| i as u32 + 1)
}

fn structure(ext: &Extension, f: &mut Vec<Finding>) {
    let d = &ext.dir;
    let need_dir = |rel: &str, f: &mut Vec<Finding>, why: &str| {
        if !d.join(rel).is_dir() {
            f.push(Finding::error(
                Rule::Structure,
                Some(d.join(rel)),
                format!("missing directory: {why}"),
            ));
        }
    };
    need_dir(
        "schemas",
        f,
        "Nickel schemas of the extension (schemas/*.ncl)",
    );
    if !d.join("tests").is_dir() {
        f.push(Finding::warning(
            Rule::Structure,
            Some(d.join("tests")),
            "no tests/ directory: `prov extension test` has nothing to run (unit.toml, integration.toml)",
        ));
    }
    match ext.manifest.extension.kind {
        ExtensionKind::Taskserv => {
            need_dir("scripts", f, "the taskserv's operations (scripts/*.sh)");
            if !d.join("schemas/settings.ncl").is_file() {
                f.push(Finding::error(
                    Rule::Structure,
                    Some(d.join("schemas/settings.ncl")),
                    "missing: the contract of the taskserv's settings",
                ));
            }
            if !d.join("schemas/version.ncl").is_file() {
                f.push(Finding::warning(
                    Rule::Structure,
                    Some(d.join("schemas/version.ncl")),
                    "missing: where versions come from (the seed's TaskservVersion); without it no version can be listed or checked",
                ));
            }
        }
        ExtensionKind::Cluster => {
            if !d.join("schemas/cluster.ncl").is_file() {
                f.push(Finding::error(
                    Rule::Structure,
                    Some(d.join("schemas/cluster.ncl")),
                    "missing: the cluster's ClusterConfig and Component contracts",
                ));
            }
        }
        ExtensionKind::Provider => {
            if !d.join("schemas/settings.ncl").is_file() {
                f.push(Finding::warning(
                    Rule::Structure,
                    Some(d.join("schemas/settings.ncl")),
                    "missing: the contract of providers.NAME settings (the seed's ProviderSettings)",
                ));
            }
        }
    }
}

/// `[examples.NAME]` tables of the manifest (settings the schema must accept); none: `{}`.
fn examples(ext: &Extension) -> Vec<(String, serde_json::Value)> {
    match ext.manifest.sections.get("examples") {
        Some(toml::Value::Table(t)) if !t.is_empty() => t
            .iter()
            .map(|(k, v)| {
                (
                    format!("[examples.{k}]"),
                    serde_json::to_value(v).unwrap_or_default(),
                )
            })
            .collect(),
        _ => vec![("the defaults ({})".into(), serde_json::json!({}))],
    }
}

fn nickel_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ncl") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn import_of(file: &Path) -> String {
    let abs = file.canonicalize().unwrap_or_else(|_| file.to_path_buf());
    abs.to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
}

/// Top-level field names of what `file` evaluates to (empty for a non-record), forcing parse,
/// typecheck and evaluation to a value but not of every field (contracts are not data).
fn top_fields(file: &Path) -> Result<Vec<String>, String> {
    let src = format!(
        "let s = import \"{}\" in if std.is_record s then std.record.fields s else []\n",
        import_of(file)
    );
    let dir = file.parent().unwrap_or(Path::new("."));
    crate::config::eval_snippet(dir, &src)
        .map_err(|e| e.to_string())
        .map(|v| {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        })
}

fn schema(ext: &Extension, manifest_text: &str, f: &mut Vec<Finding>) {
    let d = &ext.dir;
    let mut files = nickel_files(&d.join("schemas"));
    if ext.manifest.extension.kind == ExtensionKind::Cluster {
        if let Ok(rd) = std::fs::read_dir(d.join("components")) {
            let mut comps: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
            comps.sort();
            for c in comps {
                files.extend(nickel_files(&c.join("schemas")));
            }
        }
    }
    let mut broken = BTreeSet::new();
    let mut fields = BTreeMap::new();
    for file in &files {
        match top_fields(file) {
            Ok(v) => {
                fields.insert(file.clone(), v);
            }
            Err(e) => {
                f.push(Finding::nickel(Rule::Schema, file, e));
                broken.insert(file.clone());
            }
        }
    }
    let settings = d.join("schemas/settings.ncl");
    if settings.is_file() && !broken.contains(&settings) {
        settings_examples(ext, &settings, manifest_text, f);
    }
    let version = d.join("schemas/version.ncl");
    if ext.manifest.extension.kind == ExtensionKind::Taskserv
        && version.is_file()
        && !broken.contains(&version)
    {
        version_descriptor(ext, &version, f);
    }
    let cluster = d.join("schemas/cluster.ncl");
    if ext.manifest.extension.kind == ExtensionKind::Cluster && !broken.contains(&cluster) {
        if let Some(top) = fields.get(&cluster) {
            cluster_schema(ext, &cluster, top, f);
        }
    }
}

/// The settings schema accepts the manifest's `[examples]` (or `{}`).
fn settings_examples(ext: &Extension, settings: &Path, manifest_text: &str, f: &mut Vec<Finding>) {
    for (what, value) in examples(ext) {
        if let Err(e) = crate::config::check_against(settings, &value) {
            let line = what
                .strip_prefix("[examples.")
                .and_then(|_| line_of(manifest_text, &what));
            let mut finding = Finding::nickel(
                Rule::Schema,
                settings,
                format!("the settings schema refuses {what}: {e}"),
            );
            if finding.line.is_none() {
                finding.line = line;
            }
            f.push(finding);
        }
    }
}

/// `schemas/version.ncl` satisfies the seed's TaskservVersion contract, with a source prov can
/// list and the manifest's name.
fn version_descriptor(ext: &Extension, version: &Path, f: &mut Vec<Finding>) {
    let v = match crate::config::check_file_against_library(version, "TaskservVersion") {
        Err(e) => {
            return f.push(Finding::nickel(
                Rule::Schema,
                version,
                format!("does not satisfy the seed's TaskservVersion contract: {e}"),
            ))
        }
        Ok(v) => v,
    };
    if v["source"]["type"].as_str() == Some("github") {
        f.push(
            Finding::warning(
                Rule::Schema,
                Some(version.to_path_buf()),
                "source.type \"github\": prov lists versions from list, apt or command sources only; `prov taskserv versions` and version checks will fail",
            )
            .at(line_of(&std::fs::read_to_string(version).unwrap_or_default(), "source")),
        );
    }
    if v["name"].as_str() != Some(ext.name.as_str()) {
        f.push(Finding::warning(
            Rule::Schema,
            Some(version.to_path_buf()),
            format!(
                "name is {:?}, the manifest says {:?}",
                v["name"].as_str().unwrap_or(""),
                ext.name.as_str()
            ),
        ));
    }
}

/// `schemas/cluster.ncl` defines the seed's ClusterConfig and Component, and every other
/// member (an example configuration) evaluates under the contracts it is annotated with.
fn cluster_schema(ext: &Extension, cluster: &Path, top: &[String], f: &mut Vec<Finding>) {
    for need in ["ClusterConfig", "Component"] {
        if !top.iter().any(|t| t == need) {
            f.push(Finding::error(
                Rule::Schema,
                Some(cluster.to_path_buf()),
                format!("defines no `{need}` contract (the seed's cluster schema has ClusterConfig and Component)"),
            ));
        }
    }
    let src_text = std::fs::read_to_string(cluster).unwrap_or_default();
    for m in top
        .iter()
        .filter(|t| *t != "ClusterConfig" && *t != "Component")
    {
        let src = format!(
            "let s = import \"{}\" in s.\"{}\"\n",
            import_of(cluster),
            m.replace('"', "\\\"")
        );
        if let Err(e) = crate::config::eval_snippet(&ext.dir, &src) {
            let mut finding = Finding::nickel(
                Rule::Schema,
                cluster,
                format!("example `{m}` does not evaluate: {e}"),
            );
            if finding.line.is_none() {
                finding.line = line_of(&src_text, m);
            }
            f.push(finding);
        }
    }
}

fn interface(ext: &Extension, f: &mut Vec<Finding>) {
    let d = &ext.dir;
    let scripts = |dir: &Path, names: &[&str], what: &str, f: &mut Vec<Finding>| {
        for s in names {
            let p = dir.join("scripts").join(format!("{s}.sh"));
            if !p.is_file() {
                f.push(Finding::error(
                    Rule::Interface,
                    Some(p),
                    format!("missing: {what} must implement `{s}`"),
                ));
            }
        }
    };
    match ext.manifest.extension.kind {
        ExtensionKind::Taskserv => scripts(d, TASKSERV_SCRIPTS, "a taskserv", f),
        ExtensionKind::Cluster => {
            let mut declared: BTreeSet<String> = BTreeSet::new();
            if let Some(toml::Value::Table(c)) = ext
                .manifest
                .sections
                .get("cluster")
                .and_then(|c| c.get("components"))
            {
                declared.extend(c.keys().cloned());
            }
            if let Some(toml::Value::Array(a)) = ext.manifest.capabilities.get("components") {
                declared.extend(a.iter().filter_map(|v| v.as_str().map(str::to_string)));
            }
            let mut dirs: BTreeSet<String> = BTreeSet::new();
            if let Ok(rd) = std::fs::read_dir(d.join("components")) {
                dirs.extend(
                    rd.filter_map(Result::ok)
                        .filter(|e| e.path().is_dir())
                        .map(|e| e.file_name().to_string_lossy().into_owned()),
                );
            }
            for c in &declared {
                if !dirs.contains(c) {
                    f.push(Finding::error(
                        Rule::Interface,
                        Some(d.join("components").join(c)),
                        format!("the manifest declares component {c:?} but it has no directory"),
                    ));
                }
            }
            for c in &dirs {
                scripts(
                    &d.join("components").join(c),
                    COMPONENT_SCRIPTS,
                    &format!("component {c:?}"),
                    f,
                );
            }
        }
        // An exec provider's operations are its program's `info` answer: Support checks it.
        ExtensionKind::Provider => {}
    }
}

/// A version as semver, reading the short forms catalogs use (`1.6` = `1.6.0`).
pub fn parse_version(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches('v');
    semver::Version::parse(v).ok().or_else(|| {
        let parts: Vec<&str> = v.split('.').collect();
        match parts.len() {
            1 => semver::Version::parse(&format!("{v}.0.0")).ok(),
            2 => semver::Version::parse(&format!("{v}.0")).ok(),
            _ => None,
        }
    })
}

/// What a plan checks of an extension a workspace uses (the dependency rule, less "not
/// found", which the plan judges per server): dependencies whose version is outside their
/// requirement, unreadable requirements and cycles, as messages naming the manifest and line.
pub fn unmet_dependencies(ext: &Extension, known: &[Extension]) -> Vec<String> {
    let text = std::fs::read_to_string(ext.dir.join("manifest.toml")).unwrap_or_default();
    let mut f = Vec::new();
    dependency(ext, &text, known, false, &mut f);
    manifest_errors(ext, f, |_| true)
}

/// The errors among `findings` that `keep` keeps, as messages naming the manifest and line:
/// what a plan reports about an extension it uses.
fn manifest_errors(
    ext: &Extension,
    findings: Vec<Finding>,
    keep: impl Fn(&Finding) -> bool,
) -> Vec<String> {
    let manifest = ext.dir.join("manifest.toml");
    findings
        .into_iter()
        .filter(|x| x.severity == Severity::Error && keep(x))
        .map(|x| {
            format!(
                "{}{}: {}",
                manifest.display(),
                x.line.map(|l| format!(":{l}")).unwrap_or_default(),
                x.message
            )
        })
        .collect()
}

fn dependency(
    ext: &Extension,
    text: &str,
    known: &[Extension],
    report_missing: bool,
    f: &mut Vec<Finding>,
) {
    let manifest = ext.dir.join("manifest.toml");
    for d in &ext.manifest.extension.dependencies {
        let line = line_of(text, &format!("\"{}\"", d.name));
        if let Some(message) = judge_dependency(ext, d, known, report_missing) {
            f.push(Finding::error(Rule::Dependency, Some(manifest.clone()), message).at(line));
        }
    }
    if let Some(cycle) = dependency_cycle(ext, known) {
        f.push(
            Finding::error(
                Rule::Dependency,
                Some(manifest),
                format!("dependency cycle: {}", cycle.join(" -> ")),
            )
            .at(line_of(text, "dependencies")),
        );
    }
}

/// What is wrong with one dependency of `ext` as `known` resolves it: an invalid requirement,
/// itself, not found (when `report_missing`), or a version outside the requirement.
fn judge_dependency(
    ext: &Extension,
    d: &Dependency,
    known: &[Extension],
    report_missing: bool,
) -> Option<String> {
    let own = ext.manifest.extension.kind;
    let kind = d.kind.unwrap_or(own);
    let req = match d.version.as_deref().map(semver::VersionReq::parse) {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(e)) => {
            return Some(format!(
                "dependency {:?}: version {:?} is not a semver requirement: {e}",
                d.name,
                d.version.as_deref().unwrap_or_default()
            ))
        }
    };
    if d.name == ext.name.as_str() && kind == own {
        return Some(format!("{} depends on itself", d.name));
    }
    let Some(dep) = known
        .iter()
        .find(|k| k.manifest.extension.kind == kind && k.name.as_str() == d.name)
    else {
        return report_missing.then(|| {
            format!(
                "dependency {kind} {:?} is not found in the workspace, the registries, PROV_EXTENSIONS_PATH or the catalog",
                d.name
            )
        });
    };
    let req = req?;
    let have = &dep.manifest.extension.version;
    match parse_version(have) {
        Some(v) if req.matches(&v) => None,
        _ => Some(format!(
            "dependency {kind} {:?} needs version {req}, but {} ({}) is {have}",
            d.name,
            dep.dir.display(),
            dep.origin.label()
        )),
    }
}

/// A cycle through the known extensions' dependencies that starts and ends at `ext`, as
/// `kind name` steps.
fn dependency_cycle(ext: &Extension, known: &[Extension]) -> Option<Vec<String>> {
    let own = ext.manifest.extension.kind;
    let start = format!("{own} {}", ext.name);
    fn walk(
        deps: &[Dependency],
        own: ExtensionKind,
        known: &[Extension],
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        for d in deps {
            let kind = d.kind.unwrap_or(own);
            let k = format!("{kind} {}", d.name);
            if k == start {
                let mut cycle = path.clone();
                cycle.push(k);
                return Some(cycle);
            }
            if !seen.insert(k.clone()) {
                continue;
            }
            if let Some(next) = known
                .iter()
                .find(|e| e.manifest.extension.kind == kind && e.name.as_str() == d.name)
            {
                path.push(k);
                let deps = &next.manifest.extension.dependencies;
                if let Some(c) = walk(deps, kind, known, start, path, seen) {
                    return Some(c);
                }
                path.pop();
            }
        }
        None
    }
    // Depending on itself is reported as such, not as a cycle.
    let deps: Vec<Dependency> = ext
        .manifest
        .extension
        .dependencies
        .iter()
        .filter(|d| !(d.name == ext.name.as_str() && d.kind.unwrap_or(own) == own))
        .cloned()
        .collect();
    let mut path = vec![start.clone()];
    walk(&deps, own, known, &start, &mut path, &mut BTreeSet::new())
}

/// The `[compatibility]` requirements this prov does not meet (prov_version, interface_version),
/// as messages naming the manifest: what plans check for every extension a workspace uses.
pub fn incompatible(ext: &Extension) -> Vec<String> {
    let text = std::fs::read_to_string(ext.dir.join("manifest.toml")).unwrap_or_default();
    let mut f = Vec::new();
    version(ext, &text, &mut f);
    manifest_errors(ext, f, |x| x.message.starts_with("[compatibility]"))
}

fn version(ext: &Extension, text: &str, f: &mut Vec<Finding>) {
    let manifest = ext.dir.join("manifest.toml");
    let v = &ext.manifest.extension.version;
    if let Err(e) = semver::Version::parse(v) {
        f.push(
            Finding::error(
                Rule::Version,
                Some(manifest.clone()),
                format!(
                    "[extension] version {v:?} is not semantic versioning (MAJOR.MINOR.PATCH): {e}"
                ),
            )
            .at(line_of(text, "version")),
        );
    }
    let compat = match ext.manifest.sections.get("compatibility") {
        None => {
            f.push(Finding::warning(
                Rule::Version,
                Some(manifest.clone()),
                format!("no [compatibility] section: say which prov and extension interface it needs (prov_version = \">={PROV_MIN}\", interface_version = \"^{}\")", major(super::INTERFACE_VERSION)),
            ));
            return;
        }
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            f.push(
                Finding::error(
                    Rule::Version,
                    Some(manifest.clone()),
                    "[compatibility] must be a table",
                )
                .at(line_of(text, "compatibility")),
            );
            return;
        }
    };
    let mut has_interface = false;
    for (k, val) in compat {
        has_interface |= k == "interface_version";
        if let Some(mut finding) = compatibility_entry(k, val) {
            finding.file = Some(manifest.clone());
            f.push(finding.at(line_of(text, &format!("{k} ="))));
        }
    }
    if !has_interface {
        f.push(
            Finding::warning(
                Rule::Version,
                Some(manifest.clone()),
                format!(
                    "[compatibility] has no interface_version (this prov implements {})",
                    super::INTERFACE_VERSION
                ),
            )
            .at(line_of(text, "[compatibility]")),
        );
    }
}

/// What is wrong with one `[compatibility]` entry: a key prov does not check (a warning), a
/// value that is not a semver requirement, or one this prov does not meet (the caller names
/// the manifest and line).
fn compatibility_entry(k: &str, val: &toml::Value) -> Option<Finding> {
    let (what, have) = match k {
        "prov_version" | "provisioning_version" => ("prov", super::PROV_VERSION),
        "interface_version" => ("the extension interface", super::INTERFACE_VERSION),
        _ => {
            return Some(Finding::warning(
                Rule::Version,
                None,
                format!("[compatibility] {k} is not checked by prov (it checks prov_version and interface_version)"),
            ))
        }
    };
    let Some(s) = val.as_str() else {
        return Some(Finding::error(
            Rule::Version,
            None,
            format!("[compatibility] {k} must be a string such as \">=0.1.0\""),
        ));
    };
    match semver::VersionReq::parse(s) {
        Err(e) => Some(Finding::error(
            Rule::Version,
            None,
            format!("[compatibility] {k} = {s:?} is not a semver requirement: {e}"),
        )),
        Ok(req) => {
            let have_v = semver::Version::parse(have).expect("prov's versions are semver");
            (!req.matches(&have_v)).then(|| {
                Finding::error(
                    Rule::Version,
                    None,
                    format!("[compatibility] {k} = {s:?}: {what} here is {have}"),
                )
            })
        }
    }
}

/// The oldest prov a scaffold asks for.
pub const PROV_MIN: &str = "0.1.0";

fn major(v: &str) -> String {
    v.split('.').next().unwrap_or(v).to_string()
}

fn documents(ext: &Extension, f: &mut Vec<Finding>) {
    for doc in DOCUMENTS {
        let p = ext.dir.join(doc);
        let text = match std::fs::read_to_string(&p) {
            Ok(t) => t,
            Err(_) => {
                f.push(Finding::warning(
                    Rule::Documents,
                    Some(p),
                    "missing (every extension ships README.md, API.md, EXAMPLES.md and CHANGELOG.md)",
                ));
                continue;
            }
        };
        if text.trim().is_empty() {
            f.push(Finding::warning(Rule::Documents, Some(p), "empty"));
            continue;
        }
        match *doc {
            "API.md" => {
                for s in API_SECTIONS {
                    if !text
                        .lines()
                        .any(|l| l.trim_start_matches('#').trim() == *s && l.starts_with("##"))
                    {
                        f.push(Finding::warning(
                            Rule::Documents,
                            Some(p.clone()),
                            format!("no `## {s}` section (the seed's API documentation template)"),
                        ));
                    }
                }
            }
            "CHANGELOG.md" => {
                let v = &ext.manifest.extension.version;
                if !text.contains(v.as_str()) {
                    f.push(Finding::warning(
                        Rule::Documents,
                        Some(p.clone()),
                        format!("no entry for version {v} (the manifest's)"),
                    ));
                }
            }
            _ => {}
        }
    }
}

/// Validates every extension `known` holds of an [`Origin`] in `origins` (the catalog's, for
/// CI). Shorthand for the callers that check many.
pub fn validate_all(known: &[Extension], origins: &[Origin], support: &dyn Support) -> Vec<Report> {
    known
        .iter()
        .filter(|e| origins.contains(&e.origin))
        .map(|e| validate(&e.dir, Some(e.manifest.extension.kind), known, support))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nickel_locations_skip_the_check_files() {
        let m = "error: contract broken\n  ┌─ /tmp/prov-snippet-1-2.ncl:1:5\n  ┌─ /tmp/prov-lib-1-2/prov/schemas.ncl:237:5\n  ┌─ /x/schemas/settings.ncl:7:3\n";
        assert_eq!(
            nickel_location(m),
            Some((PathBuf::from("/x/schemas/settings.ncl"), Some(7)))
        );
        assert_eq!(nickel_location("nothing"), None);
    }

    fn ext(root: &Path, kind: &str, name: &str, version: &str, extra: &str) -> Extension {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("manifest.toml"),
            format!("[extension]\nname = \"{name}\"\ntype = \"{kind}\"\nversion = \"{version}\"\n{extra}"),
        )
        .unwrap();
        read_manifest(&dir, None).unwrap()
    }

    fn messages(r: &Report, rule: Rule) -> Vec<String> {
        r.findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| format!("{:?} {:?}: {}", f.severity, f.line, f.message))
            .collect()
    }

    #[test]
    fn dependencies_versions_cycles_and_compatibility() {
        let t = tempfile::tempdir().unwrap();
        let a = ext(
            t.path(),
            "taskserv",
            "a",
            "1.0.0",
            "dependencies = [\"b\"]\n",
        );
        let b = ext(t.path(), "taskserv", "b", "1.6", "dependencies = [\"a\"]\n");
        let c = ext(
            t.path(),
            "cluster",
            "c",
            "2.0.0",
            "dependencies = [{ name = \"b\", type = \"taskserv\", version = \">=1.5, <2\" }, { name = \"a\", type = \"taskserv\", version = \"^2\" }, { name = \"x\", version = \"not a req\" }]\n[compatibility]\nprov_version = \">=0.1.0\"\ninterface_version = \"^2\"\nnushell_version = \">=0.107\"\n",
        );
        let known = vec![a.clone(), b.clone(), c.clone()];
        let r = validate(&a.dir, None, &known, &NoSupport);
        assert_eq!(
            messages(&r, Rule::Dependency),
            ["Error Some(5): dependency cycle: taskserv a -> taskserv b -> taskserv a"]
        );
        let r = validate(&c.dir, None, &known, &NoSupport);
        let deps = messages(&r, Rule::Dependency);
        assert_eq!(deps.len(), 2, "{deps:?}");
        assert!(
            deps[0].contains("\"a\" needs version ^2, but") && deps[0].contains("is 1.0.0"),
            "{deps:?}"
        );
        assert!(
            deps[1].contains("\"not a req\" is not a semver requirement"),
            "{deps:?}"
        );
        let v = messages(&r, Rule::Version);
        assert!(
            v.iter().any(|m| m.starts_with("Error Some(8)")
                && m.contains("interface_version = \"^2\": the extension interface here is 1.0.0")),
            "{v:?}"
        );
        assert!(
            v.iter().any(|m| m.starts_with("Warning Some(9)")
                && m.contains("nushell_version is not checked")),
            "{v:?}"
        );
        assert!(!v.iter().any(|m| m.contains("prov_version =")), "{v:?}");
        // A short version satisfies a requirement as its full form.
        assert!(!deps.iter().any(|m| m.contains("\"b\"")), "{deps:?}");
        let r = validate(&b.dir, Some(ExtensionKind::Taskserv), &known, &NoSupport);
        assert!(messages(&r, Rule::Version)
            .iter()
            .any(|m| m.contains("version \"1.6\" is not semantic versioning")));
    }

    #[test]
    fn versions_read_short_forms() {
        assert_eq!(parse_version("1.6").unwrap().to_string(), "1.6.0");
        assert_eq!(parse_version("v2").unwrap().to_string(), "2.0.0");
        assert!(parse_version("1.2.3.4").is_none());
    }
}
