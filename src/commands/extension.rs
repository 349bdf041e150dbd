//! `prov extension new|validate|test|register|unregister|list`: each calls the engine's
//! `extension::{scaffold, check, unit, registered, discover_all}` (integration tests:
//! `crate::exttest`) and renders text or JSON.

use super::{CmdResult, Failure};
use crate::cli::{ExtKind, ExtLang, ExtensionCommand};
use crate::context::Context;
use crate::render::table::table;
use prov_engine::extension::check::{self, Finding, Report, Severity, Support};
use prov_engine::extension::{
    discover, discover_all, registered, Extension, ExtensionKind, Origin, Root,
};
use serde::Serialize;
use std::path::{Path, PathBuf};

pub fn run(ctx: &Context, cmd: ExtensionCommand) -> CmdResult {
    match cmd {
        ExtensionCommand::New {
            kind,
            name,
            dir,
            lang,
        } => new(ctx, kind, &name, dir.as_deref(), lang),
        ExtensionCommand::Test {
            path,
            unit,
            integration,
            update_expected,
            step_timeout,
            json,
        } => test(
            ctx,
            &path,
            (unit, integration),
            update_expected,
            std::time::Duration::from_secs(step_timeout),
            json,
        ),
        ExtensionCommand::Validate {
            path,
            kind,
            strict,
            json,
        } => validate(ctx, &path, kind, strict, json),
        ExtensionCommand::Register {
            path,
            kind,
            workspace,
            strict,
        } => register(ctx, &path, kind, workspace, strict),
        ExtensionCommand::Unregister {
            name,
            kind,
            workspace,
        } => unregister(ctx, &name, kind, workspace),
        ExtensionCommand::List { kind, json } => list(ctx, kind, json),
    }
}

/// The interface checks of the implementing crates, by kind.
pub struct CrateSupport {
    rt: tokio::runtime::Runtime,
}

impl CrateSupport {
    pub fn new() -> Result<CrateSupport, Failure> {
        Ok(CrateSupport {
            rt: super::runtime()?,
        })
    }
}

impl Support for CrateSupport {
    fn render(
        &self,
        _ext: &Extension,
        template: &Path,
        ctx: &serde_json::Value,
    ) -> Result<String, String> {
        // Every kind renders templates with the taskserv machinery (cluster components too).
        prov_taskservs::render_template(template, ctx)
    }

    fn interface(&self, ext: &Extension) -> Vec<Finding> {
        match ext.manifest.extension.kind {
            ExtensionKind::Taskserv => prov_taskservs::check(ext),
            ExtensionKind::Cluster => prov_clusters::check(ext),
            ExtensionKind::Provider => {
                // The program runs in a scratch workspace: validation leaves nothing behind.
                let scratch = std::env::temp_dir().join(format!(
                    "prov-extension-check-{}-{}",
                    std::process::id(),
                    ext.name
                ));
                let _ = std::fs::create_dir_all(&scratch);
                let settings = example_settings(ext);
                let out = self
                    .rt
                    .block_on(prov_providers::exec::check(ext, &settings, &scratch));
                let _ = std::fs::remove_dir_all(&scratch);
                out
            }
        }
    }
}

/// The first `[examples.NAME]` of the manifest (the settings a provider is asked `info` with).
fn example_settings(ext: &Extension) -> serde_json::Value {
    ext.manifest
        .sections
        .get("examples")
        .and_then(|e| e.as_table())
        .and_then(|t| t.values().next())
        .and_then(|v| serde_json::to_value(v).ok())
        .unwrap_or_else(|| serde_json::json!({}))
}

/// The extensions of every kind the workspace can use (precedence winners): what dependencies
/// may name.
pub fn known(roots: &[Root]) -> Result<Vec<Extension>, Failure> {
    let mut out = Vec::new();
    for kind in ExtensionKind::ALL {
        out.extend(discover(roots, kind)?);
    }
    Ok(out)
}

/// Validates `path` against the workspace's search path.
pub fn check_dir(
    ctx: &Context,
    path: &Path,
    kind: Option<ExtensionKind>,
) -> Result<Report, Failure> {
    let dir = ctx.base.join(path);
    let mut roots = ctx.extension_roots(&ctx.base)?;
    // An extension inside a tree (`WS/extensions/taskservs/NAME`, a PROV_EXTENSIONS_PATH
    // entry) finds its siblings first, as the workspace using it would.
    let abs = std::path::absolute(&dir).unwrap_or_else(|_| dir.clone());
    if let Some(tree) = abs.parent().filter(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| ExtensionKind::ALL.iter().any(|k| k.dir_name() == n))
    }) {
        if let Some(tree) = tree.parent() {
            roots.insert(0, Root::tree(tree.to_path_buf(), Origin::Workspace));
        }
    }
    let known = known(&roots)?;
    Ok(check::validate(&dir, kind, &known, &CrateSupport::new()?))
}

fn validate(
    ctx: &Context,
    path: &Path,
    kind: Option<ExtKind>,
    strict: bool,
    json: bool,
) -> CmdResult {
    let report = check_dir(ctx, path, kind.map(Into::into))?;
    let passed = report.passed(strict);
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            report: &'a Report,
            strict: bool,
            valid: bool,
            errors: usize,
            warnings: usize,
        }
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&Out {
                report: &report,
                strict,
                valid: passed,
                errors: report.errors(),
                warnings: report.warnings(),
            })?
        );
    } else {
        crate::out!("{}", render_report(&report, strict));
    }
    Ok(if passed { 0 } else { 1 })
}

/// `severity[rule] FILE:LINE: message` per finding, then a summary line.
pub fn render_report(r: &Report, strict: bool) -> String {
    let mut s = String::new();
    for f in &r.findings {
        s.push_str(&render_finding(&r.dir, f));
        s.push('\n');
    }
    let what = match (&r.kind, &r.name) {
        (Some(k), Some(n)) => format!("{k} {n} {}", r.version.as_deref().unwrap_or_default()),
        _ => "extension".into(),
    };
    let verdict = if r.passed(strict) { "valid" } else { "invalid" };
    s.push_str(&format!(
        "{} ({}): {verdict}: {} error{}, {} warning{}{}\n",
        what.trim_end(),
        r.dir.display(),
        r.errors(),
        if r.errors() == 1 { "" } else { "s" },
        r.warnings(),
        if r.warnings() == 1 { "" } else { "s" },
        if strict && r.warnings() > 0 {
            " (--strict: warnings fail)"
        } else {
            ""
        }
    ));
    s
}

fn render_finding(dir: &Path, f: &Finding) -> String {
    let sev = match f.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let loc = match &f.file {
        None => String::new(),
        Some(p) => {
            // Nickel names files by their canonical path.
            let canonical = dir.canonicalize().ok();
            let shown = p
                .strip_prefix(dir)
                .ok()
                .or_else(|| canonical.as_deref().and_then(|c| p.strip_prefix(c).ok()))
                .filter(|r| !r.as_os_str().is_empty())
                .unwrap_or(p);
            match f.line {
                Some(l) => format!(" {}:{l}:", shown.display()),
                None => format!(" {}:", shown.display()),
            }
        }
    };
    format!("{sev}[{}]{loc} {}", f.rule.as_str(), f.message)
}

/// The registry file `register`/`unregister` edit.
fn registry_file(ctx: &Context, workspace: bool) -> Result<PathBuf, Failure> {
    if workspace {
        return Ok(registered::workspace_file(&ctx.base));
    }
    registered::user_file().ok_or_else(|| {
        Failure(
            "no user registry: neither XDG_CONFIG_HOME nor HOME is set (use --workspace)".into(),
        )
    })
}

fn register(
    ctx: &Context,
    path: &Path,
    kind: Option<ExtKind>,
    workspace: bool,
    strict: bool,
) -> CmdResult {
    let report = check_dir(ctx, path, kind.map(Into::into))?;
    if !report.passed(strict) {
        crate::errln!("{}", render_report(&report, strict).trim_end());
        return Err(Failure(format!(
            "{}: not registered: it does not validate",
            report.dir.display()
        )));
    }
    let ext = prov_engine::extension::read_manifest(&report.dir, None)?;
    let file = registry_file(ctx, workspace)?;
    let r = registered::register(&file, &ext)?;
    crate::outln!(
        "registered {} {} {} ({}) in {}{}",
        r.entry.kind,
        r.entry.name,
        ext.manifest.extension.version,
        r.entry.path,
        file.display(),
        match &r.replaced {
            Some(old) => format!(" (replacing {})", old.path),
            None => String::new(),
        }
    );
    for f in &report.findings {
        crate::errln!("{}", render_finding(&report.dir, f));
    }
    Ok(0)
}

fn unregister(ctx: &Context, name: &str, kind: Option<ExtKind>, workspace: bool) -> CmdResult {
    let file = registry_file(ctx, workspace)?;
    for e in registered::unregister(&file, name, kind.map(Into::into))? {
        crate::outln!(
            "unregistered {} {} ({}) from {}",
            e.kind,
            e.name,
            e.path,
            file.display()
        );
    }
    Ok(0)
}

/// One row of `prov extension list`.
#[derive(Serialize)]
struct Listed {
    name: String,
    #[serde(rename = "type")]
    kind: ExtensionKind,
    version: String,
    source: Origin,
    path: PathBuf,
    interface_version: Option<String>,
    /// Whether this is the one a workspace uses (false: an earlier source has one of this name).
    active: bool,
    shadowed_by: Option<Origin>,
    valid: bool,
    errors: usize,
    warnings: usize,
}

fn list(ctx: &Context, kind: Option<ExtKind>, json: bool) -> CmdResult {
    let roots = ctx.extension_roots(&ctx.base)?;
    let known = known(&roots)?;
    let support = CrateSupport::new()?;
    let kinds: Vec<ExtensionKind> = match kind {
        Some(k) => vec![k.into()],
        None => ExtensionKind::ALL.to_vec(),
    };
    let mut found = Vec::new();
    let mut rows = Vec::new();
    for k in kinds.iter().copied() {
        // Implementations compiled into prov come first: a directory of the same name is
        // shadowed (taskservs, clusters) or refused (providers).
        let compiled = match k {
            ExtensionKind::Provider => ctx.registry.provider_names(),
            ExtensionKind::Taskserv => ctx.registry.taskserv_names(),
            ExtensionKind::Cluster => ctx.registry.cluster_names(),
        };
        let mut winners: std::collections::BTreeMap<String, Origin> = Default::default();
        for name in compiled {
            winners.insert(name.to_string(), Origin::Compiled);
            rows.push(Listed {
                name: name.to_string(),
                kind: k,
                version: env!("CARGO_PKG_VERSION").to_string(),
                source: Origin::Compiled,
                path: PathBuf::new(),
                interface_version: Some(prov_engine::extension::INTERFACE_VERSION.to_string()),
                active: true,
                shadowed_by: None,
                valid: true,
                errors: 0,
                warnings: 0,
            });
        }
        for e in discover_all(&roots, k)? {
            let shadowed_by = winners.get(e.name.as_str()).copied();
            winners.entry(e.name.to_string()).or_insert(e.origin);
            found.push((k, e, shadowed_by));
        }
    }
    let reports = validate_each(&found, &known, &support);
    for ((k, e, shadowed_by), report) in found.into_iter().zip(reports) {
        {
            rows.push(Listed {
                name: e.name.to_string(),
                kind: k,
                version: e.manifest.extension.version.clone(),
                source: e.origin,
                path: e.dir.clone(),
                interface_version: e
                    .manifest
                    .sections
                    .get("compatibility")
                    .and_then(|c| c.get("interface_version"))
                    .and_then(|v| v.as_str())
                    .map(str::to_string),
                active: shadowed_by.is_none(),
                shadowed_by,
                valid: report.passed(false),
                errors: report.errors(),
                warnings: report.warnings(),
            });
        }
    }
    rows.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(0);
    }
    crate::out!("{}", list_table(&rows));
    crate::outln!(
        "precedence (first wins): built-in (compiled into prov) > workspace extensions/ > registered (workspace) > PROV_EXTENSIONS_PATH > registered (user) > catalog"
    );
    Ok(0)
}

/// Extensions' reports, in `found`'s order. Validations are independent (each mostly Nickel
/// evaluations on threads of their own): a few at once.
fn validate_each(
    found: &[(ExtensionKind, Extension, Option<Origin>)],
    known: &[Extension],
    support: &CrateSupport,
) -> Vec<Report> {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let reports: Vec<std::sync::Mutex<Option<Report>>> =
        found.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((k, e, _)) = found.get(i) else { break };
                let r = check::validate(&e.dir, Some(*k), known, support);
                *reports[i].lock().unwrap_or_else(|p| p.into_inner()) = Some(r);
            });
        }
    });
    reports
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|p| p.into_inner())
                .expect("every extension was validated")
        })
        .collect()
}

/// `prov extension list`'s table: one row per extension, compiled ones included.
fn list_table(rows: &[Listed]) -> String {
    let body: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.kind.to_string(),
                r.version.clone(),
                r.source.label().to_string(),
                r.interface_version.clone().unwrap_or_else(|| "-".into()),
                match (r.errors, r.warnings) {
                    (0, 0) => "yes".into(),
                    (0, w) => format!("yes ({w} warning{})", if w == 1 { "" } else { "s" }),
                    (e, _) => format!("no ({e} error{})", if e == 1 { "" } else { "s" }),
                },
                match (r.shadowed_by, r.kind) {
                    (None, _) => "active".into(),
                    // prov refuses a provider directory named as a compiled provider.
                    (Some(Origin::Compiled), ExtensionKind::Provider) => {
                        "refused: name of a built-in provider".into()
                    }
                    (Some(o), _) => format!("shadowed by {}", o.label()),
                },
                match r.source {
                    Origin::Catalog => "built-in catalog".into(),
                    Origin::Compiled => "compiled into prov".into(),
                    _ => r.path.display().to_string(),
                },
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "TYPE",
            "VERSION",
            "SOURCE",
            "INTERFACE",
            "VALIDATES",
            "STATUS",
            "PATH",
        ],
        &body,
    )
}

fn new(ctx: &Context, kind: ExtKind, name: &str, dir: Option<&Path>, lang: ExtLang) -> CmdResult {
    let dir = ctx.base.join(dir.unwrap_or(Path::new(name)));
    let lang = match lang {
        ExtLang::Python => prov_engine::extension::scaffold::Lang::Python,
        ExtLang::Bash => prov_engine::extension::scaffold::Lang::Bash,
    };
    let kind: ExtensionKind = kind.into();
    let files = prov_engine::extension::scaffold::write(&dir, kind, name, lang)?;
    crate::outln!(
        "created {kind} {name} in {} ({} files)",
        dir.display(),
        files.len()
    );
    crate::outln!(
        "next: prov extension validate --strict {0} && prov extension test {0}",
        dir.display()
    );
    Ok(0)
}

/// One test result, unit or integration, for output.
#[derive(Serialize)]
struct TestResult {
    kind: &'static str,
    group: String,
    name: String,
    passed: bool,
    /// Not run, for the reason in `message`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    skipped: bool,
    message: Option<String>,
    seconds: Option<f64>,
}

/// A test result as a line: `ok`, `skip` or `FAIL`, its kind, group and name, then its message indented.
fn result_line(r: &TestResult) -> String {
    format!(
        "{} {} {}: {}{}",
        match (r.passed, r.skipped) {
            (true, _) => "ok  ",
            (false, true) => "skip",
            (false, false) => "FAIL",
        },
        r.kind,
        r.group,
        r.name,
        match &r.message {
            Some(m) => format!("\n       {}", m.replace('\n', "\n       ")),
            None => String::new(),
        }
    )
}

/// `prov extension test`: `which` is (--unit, --integration); neither means both.
fn test(
    ctx: &Context,
    path: &Path,
    which: (bool, bool),
    update: bool,
    step_timeout: std::time::Duration,
    json: bool,
) -> CmdResult {
    let (unit, integration) = which;
    let (unit, integration) = if !unit && !integration {
        (true, true)
    } else {
        (unit, integration)
    };
    let dir = ctx.base.join(path);
    let ext = prov_engine::extension::read_manifest(&dir, None)?;
    let support = CrateSupport::new()?;
    let mut results: Vec<TestResult> = Vec::new();
    if unit {
        for c in prov_engine::extension::unit::run(&ext, &support, update)? {
            let r = TestResult {
                kind: "unit",
                group: c.group.to_string(),
                name: c.name,
                passed: c.passed,
                skipped: false,
                message: c.message,
                seconds: None,
            };
            if !json {
                crate::outln!("{}", result_line(&r));
            }
            results.push(r);
        }
    }
    if integration {
        let mut report = |s: &crate::exttest::Step| {
            if !json {
                crate::outln!(
                    "{} ({:.1}s)",
                    result_line(&TestResult {
                        kind: "integration",
                        group: ext.manifest.extension.kind.to_string(),
                        name: s.name.clone(),
                        passed: s.passed,
                        skipped: s.skipped,
                        message: s.message.clone(),
                        seconds: None,
                    }),
                    s.seconds
                );
            }
        };
        match crate::exttest::run(&ext, step_timeout, &mut report)? {
            None => {
                if !json {
                    crate::outln!("(no tests/integration.toml: no integration tests)");
                }
            }
            Some(steps) => results.extend(steps.into_iter().map(|s| TestResult {
                kind: "integration",
                group: ext.manifest.extension.kind.to_string(),
                name: s.name,
                passed: s.passed,
                skipped: s.skipped,
                message: s.message,
                seconds: Some(s.seconds),
            })),
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    let skipped = results.iter().filter(|r| r.skipped).count();
    let failed = results.len() - passed - skipped;
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "extension": ext.name.as_str(),
                "type": ext.manifest.extension.kind,
                "passed": passed,
                "failed": failed,
                "skipped": skipped,
                "results": results,
            }))?
        );
    } else {
        if skipped > 0 {
            crate::outln!("{passed} passed, {failed} failed, {skipped} skipped");
        } else {
            crate::outln!("{passed} passed, {failed} failed");
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
