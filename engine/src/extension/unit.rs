//! `prov extension test --unit`: the cases of an extension's `tests/unit.toml` — settings (and
//! cluster configurations) its schemas must accept or refuse, templates rendered against
//! expected files — plus a syntax check of every script and of the exec provider's program.
//! Results are typed; the CLI prints them.
//!
//! ```toml
//! [[settings]]                 # component = "app" for a cluster component's schema
//! name = "the defaults"
//! settings = {}
//! expect = "pass"              # or "fail", with an optional error = "substring"
//!
//! [[cluster]]                  # clusters: schemas/cluster.ncl's ClusterConfig
//! name = "one replica"
//! config = { name = "x", components = [{ name = "app", type = "application" }] }
//! expect = "pass"
//!
//! [[template]]
//! template = "app.conf.j2"     # under templates/ (or components/COMPONENT/templates/)
//! settings = { port = 1 }
//! expected = "tests/expected/app.conf"
//! ```

use super::check::Support;
use super::{Extension, ExtensionKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One unit test and its result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Case {
    /// `settings`, `cluster`, `template` or `script`.
    pub group: &'static str,
    pub name: String,
    pub passed: bool,
    /// Why it failed.
    pub message: Option<String>,
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Expect {
    Pass,
    Fail,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SettingsCase {
    name: String,
    #[serde(default)]
    component: Option<String>,
    settings: toml::Table,
    expect: Expect,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterCase {
    name: String,
    config: toml::Table,
    expect: Expect,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateCase {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    component: Option<String>,
    template: String,
    #[serde(default)]
    settings: toml::Table,
    expected: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitFile {
    #[serde(default)]
    settings: Vec<SettingsCase>,
    #[serde(default)]
    cluster: Vec<ClusterCase>,
    #[serde(default)]
    template: Vec<TemplateCase>,
}

/// The render context unit tests use: a server named `test` at 192.0.2.10, prov's files at `/`.
pub fn test_context(ext: &Extension, component: Option<&str>, settings: &Value) -> Value {
    let name = component.unwrap_or(ext.name.as_str());
    let server = json!({
        "name": "test", "hostname": "test", "id": "test-1", "address": "192.0.2.10",
        "private_ip": "192.0.2.10", "public_ip": "192.0.2.10", "plan": "small", "zone": "test",
        "os": "debian-12",
    });
    let mut server_full = server.clone();
    server_full["facts"] = server;
    json!({
        "taskserv": { "name": name, "address": format!("taskserv.test.{name}"), "version": null },
        "server": server_full,
        "settings": settings,
        "root": "",
    })
}

/// Runs every unit test of `ext`. An unreadable `tests/unit.toml` is an error naming the file
/// and line; a missing one leaves the script checks. With `update`, a template case whose
/// rendering differs from its expected file (or whose file is missing) writes the rendering
/// there instead of failing: the author reviews the change (`--update-expected`).
pub fn run(ext: &Extension, support: &dyn Support, update: bool) -> Result<Vec<Case>, String> {
    let file = ext.dir.join("tests").join("unit.toml");
    let unit: UnitFile = match std::fs::read_to_string(&file) {
        Err(_) => UnitFile::default(),
        Ok(text) => toml::from_str(&text).map_err(|e: toml::de::Error| {
            let line = e
                .span()
                .map(|s| format!("{}:", text[..s.start].matches('\n').count() + 1))
                .unwrap_or_default();
            format!("{}:{line} {}", file.display(), e.message().trim())
        })?,
    };
    let mut out = Vec::new();
    for c in &unit.settings {
        out.push(settings_case(ext, c));
    }
    for c in &unit.cluster {
        out.push(cluster_case(ext, c));
    }
    for c in &unit.template {
        out.push(template_case(ext, c, support, update));
    }
    out.extend(script_cases(ext));
    Ok(out)
}

fn component_dir(ext: &Extension, component: Option<&str>) -> PathBuf {
    match component {
        Some(c) => ext.dir.join("components").join(c),
        None => ext.dir.clone(),
    }
}

fn judge(
    group: &'static str,
    name: String,
    file: PathBuf,
    expect: Expect,
    error: Option<&str>,
    result: Result<Value, String>,
) -> Case {
    let (passed, message) = match (expect, result) {
        (Expect::Pass, Ok(_)) => (true, None),
        (Expect::Pass, Err(e)) => (false, Some(format!("expected to pass, refused: {e}"))),
        (Expect::Fail, Ok(v)) => (false, Some(format!("expected to fail, accepted as {v}"))),
        (Expect::Fail, Err(e)) => match error {
            Some(want) if !e.contains(want) => (
                false,
                Some(format!(
                    "refused, but the error does not mention {want:?}: {e}"
                )),
            ),
            _ => (true, None),
        },
    };
    Case {
        group,
        name,
        passed,
        message,
        file: Some(file),
    }
}

fn to_json(t: &toml::Table) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

fn settings_case(ext: &Extension, c: &SettingsCase) -> Case {
    let schema = component_dir(ext, c.component.as_deref()).join("schemas/settings.ncl");
    let name = match &c.component {
        Some(comp) => format!("{comp}: {}", c.name),
        None => c.name.clone(),
    };
    let result = if schema.is_file() {
        crate::config::check_against(&schema, &to_json(&c.settings)).map_err(|e| e.to_string())
    } else {
        Err(format!("{} does not exist", schema.display()))
    };
    judge(
        "settings",
        name,
        schema,
        c.expect,
        c.error.as_deref(),
        result,
    )
}

fn cluster_case(ext: &Extension, c: &ClusterCase) -> Case {
    let schema = ext.dir.join("schemas/cluster.ncl");
    let result = if ext.manifest.extension.kind != ExtensionKind::Cluster {
        Err("[[cluster]] cases are for cluster extensions".into())
    } else {
        crate::config::check_against_member(&schema, Some("ClusterConfig"), &to_json(&c.config))
            .map_err(|e| e.to_string())
    };
    judge(
        "cluster",
        c.name.clone(),
        schema,
        c.expect,
        c.error.as_deref(),
        result,
    )
}

fn template_case(ext: &Extension, c: &TemplateCase, support: &dyn Support, update: bool) -> Case {
    let base = component_dir(ext, c.component.as_deref());
    let template = base.join("templates").join(&c.template);
    let expected_file = ext.dir.join(&c.expected);
    let name = c.name.clone().unwrap_or_else(|| match &c.component {
        Some(comp) => format!("{comp}: {} renders {}", c.template, c.expected),
        None => format!("{} renders {}", c.template, c.expected),
    });
    let fail = |m: String| Case {
        group: "template",
        name: name.clone(),
        passed: false,
        message: Some(m),
        file: Some(template.clone()),
    };
    // The settings as the schema fills them (defaults), as at apply.
    let schema = base.join("schemas/settings.ncl");
    let settings = if schema.is_file() {
        match crate::config::check_against(&schema, &to_json(&c.settings)) {
            Ok(v) => v,
            Err(e) => return fail(format!("the settings do not pass the schema: {e}")),
        }
    } else {
        to_json(&c.settings)
    };
    let expected = match std::fs::read_to_string(&expected_file) {
        Ok(t) => t,
        Err(_) if update => String::new(),
        Err(e) => return fail(format!("{}: {e}", expected_file.display())),
    };
    let ctx = test_context(ext, c.component.as_deref(), &settings);
    match support.render(ext, &template, &ctx) {
        Err(e) => fail(e),
        Ok(got) if update && got != expected => {
            let written = expected_file
                .parent()
                .map_or(Ok(()), std::fs::create_dir_all)
                .and_then(|()| std::fs::write(&expected_file, &got));
            match written {
                Ok(()) => Case {
                    group: "template",
                    name,
                    passed: true,
                    message: Some(format!("updated {}", expected_file.display())),
                    file: Some(template),
                },
                Err(e) => fail(format!("{}: {e}", expected_file.display())),
            }
        }
        Ok(got) if got == expected => Case {
            group: "template",
            name,
            passed: true,
            message: None,
            file: Some(template),
        },
        Ok(got) => fail(first_difference(&expected, &got, &expected_file)),
    }
}

/// Where `got` first differs from `expected`, by line.
fn first_difference(expected: &str, got: &str, file: &Path) -> String {
    let (e, g): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), got.lines().collect());
    for i in 0..e.len().max(g.len()) {
        if e.get(i) != g.get(i) {
            return format!(
                "differs from {} at line {}: expected {:?}, rendered {:?}",
                file.display(),
                i + 1,
                e.get(i).copied().unwrap_or("(end of file)"),
                g.get(i).copied().unwrap_or("(end of file)")
            );
        }
    }
    format!("differs from {} in its final newline", file.display())
}

fn shell_scripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "sh") && p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `bash -n` over every script; the exec provider's program by its language (Python: parsed,
/// shell: `bash -n`; other languages are not checked).
fn script_cases(ext: &Extension) -> Vec<Case> {
    let mut files = shell_scripts(&ext.dir.join("scripts"));
    if let Ok(rd) = std::fs::read_dir(ext.dir.join("components")) {
        let mut comps: Vec<PathBuf> = rd.filter_map(Result::ok).map(|e| e.path()).collect();
        comps.sort();
        for c in comps {
            files.extend(shell_scripts(&c.join("scripts")));
        }
    }
    let mut program = None;
    if ext.manifest.extension.kind == ExtensionKind::Provider {
        if let Some(cmd) = ext
            .manifest
            .sections
            .get("exec")
            .and_then(|e| e.get("command"))
            .and_then(|c| c.as_str())
            .filter(|c| c.contains('/'))
        {
            program = Some(ext.dir.join(cmd.trim_start_matches("./")));
        }
    }
    let mut out: Vec<Case> = files.iter().map(|f| syntax(ext, f, "bash")).collect();
    if let Some(p) = program {
        let head = std::fs::read_to_string(&p)
            .unwrap_or_default()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string();
        let lang = if p.extension().is_some_and(|x| x == "py") || head.contains("python") {
            Some("python3")
        } else if p.extension().is_some_and(|x| x == "sh")
            || head.contains("bash")
            || head.ends_with("/sh")
        {
            Some("bash")
        } else {
            None
        };
        if let Some(l) = lang {
            out.push(syntax(ext, &p, l));
        }
    }
    out
}

fn syntax(ext: &Extension, file: &Path, lang: &str) -> Case {
    let mut cmd = if lang == "python3" {
        let mut c = std::process::Command::new("python3");
        c.args([
            "-c",
            "import ast, sys; ast.parse(open(sys.argv[1]).read(), sys.argv[1])",
        ]);
        c
    } else {
        let mut c = std::process::Command::new("bash");
        c.arg("-n");
        c
    };
    let shown = file
        .strip_prefix(&ext.dir)
        .unwrap_or(file)
        .display()
        .to_string();
    let (passed, message) = match cmd.arg(file).output() {
        Ok(o) if o.status.success() => (true, None),
        Ok(o) => (
            false,
            Some(String::from_utf8_lossy(&o.stderr).trim().to_string()),
        ),
        Err(e) => (false, Some(format!("cannot run {lang}: {e}"))),
    };
    Case {
        group: "script",
        name: format!("{shown}: {lang} syntax"),
        passed,
        message,
        file: Some(file.to_path_buf()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_name_the_line() {
        let m = first_difference("a\nb\n", "a\nc\n", Path::new("e"));
        assert!(
            m.contains("line 2") && m.contains("\"b\"") && m.contains("\"c\""),
            "{m}"
        );
        let m = first_difference("a\n", "a", Path::new("e"));
        assert!(m.contains("final newline"), "{m}");
    }
}
