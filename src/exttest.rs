//! `prov extension test --integration`: an extension's whole lifecycle, driven through this
//! very `prov` binary in a scratch workspace on `local` servers (sandbox directories, no root),
//! as a user would run it — taskserv: install → status → configure → upgrade → uninstall;
//! cluster: create → status → scale → upgrade → delete; provider: create → info → stop → start
//! → delete. The parameters come from the extension's `tests/integration.toml`.

use prov_engine::config::nickel_literal;
use prov_engine::extension::{Extension, ExtensionKind};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

/// One lifecycle step and its result.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub passed: bool,
    /// Not run, for the reason in `message` (not counted as passed or failed).
    pub skipped: bool,
    pub message: Option<String>,
    pub seconds: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskservTest {
    #[serde(default)]
    isolation: Isolation,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    settings: toml::Table,
    configure: toml::Table,
    /// The version to upgrade to; none: the extension's source offers one version (a
    /// distribution package), so the upgrade step is reported as skipped, saying why.
    #[serde(default)]
    upgrade: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterTest {
    #[serde(default)]
    isolation: Isolation,
    #[serde(default = "two")]
    servers: u32,
    version: String,
    component: String,
    #[serde(default = "application", rename = "type")]
    kind: String,
    #[serde(default)]
    config: toml::Table,
    #[serde(default = "one")]
    replicas: u32,
    scale: u32,
    upgrade: String,
}

/// How the `local` servers are isolated: `none` (sandbox directories, any user) or `netns`
/// (a network namespace, sshd and nftables per server: root).
#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Isolation {
    #[default]
    None,
    Netns,
}

impl Isolation {
    fn providers(self) -> String {
        let i = match self {
            Isolation::None => "none",
            Isolation::Netns => "netns",
        };
        format!(
            r#"providers = {{ local = {{ isolation = "{i}", defaults = {{ plan = "small", zone = "local" }} }} }},"#
        )
    }
}

fn two() -> u32 {
    2
}
fn one() -> u32 {
    1
}
fn application() -> String {
    "application".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderTest {
    #[serde(default)]
    settings: toml::Table,
    plan: String,
    zone: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IntegrationFile {
    #[serde(default)]
    taskserv: Option<TaskservTest>,
    #[serde(default)]
    cluster: Option<ClusterTest>,
    #[serde(default)]
    provider: Option<ProviderTest>,
}

/// A scratch workspace that registers the extension under test in its registry and destroys
/// whatever is left when dropped.
struct Scratch {
    dir: PathBuf,
    prov: PathBuf,
    applied: bool,
    /// How long one `prov` command may run: a hung script fails its step instead of the run.
    timeout: std::time::Duration,
    rt: tokio::runtime::Runtime,
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Scratch {
    fn new(ext: &Extension, timeout: std::time::Duration) -> Result<Scratch, String> {
        // Short: a server's sandbox lives below it, and services put unix sockets there (at
        // most 104 bytes of path; containerd's socket under a longer name did not fit).
        let dir = std::env::temp_dir().join(format!(
            "pxt-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let abs = std::path::absolute(&ext.dir).map_err(|e| e.to_string())?;
        let registry = format!(
            "[[extension]]\nname = {}\ntype = \"{}\"\npath = {}\n",
            toml::Value::String(ext.name.to_string()),
            ext.manifest.extension.kind,
            toml::Value::String(abs.display().to_string())
        );
        std::fs::write(dir.join("extensions.toml"), registry).map_err(|e| e.to_string())?;
        let prov = std::env::current_exe().map_err(|e| format!("finding prov itself: {e}"))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting a runtime: {e}"))?;
        Ok(Scratch {
            dir,
            prov,
            applied: false,
            timeout,
            rt,
        })
    }

    fn write(&self, main: &str) -> Result<(), String> {
        std::fs::write(self.dir.join("main.ncl"), main).map_err(|e| e.to_string())
    }

    fn prov(&mut self, args: &[&str]) -> Out {
        if args.first() == Some(&"apply") {
            self.applied = true;
        }
        let cmd = prov_engine::subprocess::Cmd::new(&self.prov)
            .arg("-C")
            .arg(&self.dir)
            .arg("--no-color")
            .args(args)
            .timeout(self.timeout);
        match self.rt.block_on(cmd.run()) {
            Ok(o) => Out {
                code: o.code().unwrap_or(-1),
                stdout: o.stdout_text(),
                stderr: o.stderr_text(),
            },
            Err(e) => Out {
                code: -1,
                stdout: String::new(),
                stderr: format!("`prov {}`: {e}", args.join(" ")),
            },
        }
    }

    /// `prov ARGS` must exit 0; the error quotes its last lines.
    fn ok(&mut self, args: &[&str]) -> Result<String, String> {
        let o = self.prov(args);
        if o.code == 0 {
            return Ok(o.stdout);
        }
        let tail: Vec<&str> = o
            .stderr
            .lines()
            .chain(o.stdout.lines())
            .filter(|l| !l.trim().is_empty())
            .collect();
        let start = tail.len().saturating_sub(12);
        Err(format!(
            "`prov {}` exited {}:\n{}",
            args.join(" "),
            o.code,
            tail[start..].join("\n")
        ))
    }

    fn json(&mut self, args: &[&str]) -> Result<Value, String> {
        let out = self.ok(args)?;
        serde_json::from_str(&out)
            .map_err(|e| format!("`prov {}`: not JSON ({e}): {out}", args.join(" ")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.applied {
            let _ = self.prov(&["destroy", "--auto-approve"]);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs the steps in order; after a failed step the rest are reported as not run (failed).
/// A step in `skip` is reported as skipped with its reason, and not run.
fn steps(
    names: &[&str],
    skip: &[(usize, String)],
    report: &mut dyn FnMut(&Step),
    mut run: impl FnMut(usize) -> Result<(), String>,
) -> Vec<Step> {
    let mut out = Vec::new();
    let mut broken: Option<String> = None;
    for (i, n) in names.iter().enumerate() {
        let started = Instant::now();
        let skipped = skip
            .iter()
            .find(|(k, _)| *k == i)
            .map(|(_, why)| why.clone());
        let result = match (&broken, &skipped) {
            (Some(b), _) => Err(format!("not run: {b} failed")),
            (None, Some(_)) => Ok(()),
            (None, None) => run(i),
        };
        if result.is_err() && broken.is_none() {
            broken = Some(n.to_string());
        }
        let step = Step {
            name: n.to_string(),
            passed: result.is_ok() && skipped.is_none(),
            skipped: result.is_ok() && skipped.is_some(),
            message: result.err().or(skipped),
            seconds: started.elapsed().as_secs_f64(),
        };
        report(&step);
        out.push(step);
    }
    out
}

fn lit(t: &toml::Table) -> String {
    nickel_literal(&serde_json::to_value(t).unwrap_or(json!({})))
}

/// Runs `tests/integration.toml` of `ext`. None: the extension has no integration tests.
pub fn run(
    ext: &Extension,
    step_timeout: std::time::Duration,
    report: &mut dyn FnMut(&Step),
) -> Result<Option<Vec<Step>>, String> {
    let file = ext.dir.join("tests").join("integration.toml");
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(_) => return Ok(None),
    };
    let spec: IntegrationFile = toml::from_str(&text).map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| format!("{}:", text[..s.start].matches('\n').count() + 1))
            .unwrap_or_default();
        format!("{}:{line} {}", file.display(), e.message().trim())
    })?;
    let kind = ext.manifest.extension.kind;
    let section = match kind {
        ExtensionKind::Taskserv => "[taskserv]",
        ExtensionKind::Cluster => "[cluster]",
        ExtensionKind::Provider => "[provider]",
    };
    let missing = || format!("{}: no {section} section for this {kind}", file.display());
    let mut ws = Scratch::new(ext, step_timeout)?;
    Ok(Some(match kind {
        ExtensionKind::Taskserv => {
            taskserv(ext, spec.taskserv.ok_or_else(missing)?, &mut ws, report)
        }
        ExtensionKind::Cluster => cluster(ext, spec.cluster.ok_or_else(missing)?, &mut ws, report),
        ExtensionKind::Provider => {
            provider(ext, spec.provider.ok_or_else(missing)?, &mut ws, report)
        }
    }))
}

fn taskserv(
    ext: &Extension,
    t: TaskservTest,
    ws: &mut Scratch,
    report: &mut dyn FnMut(&Step),
) -> Vec<Step> {
    let name = ext.name.to_string();
    let local = t.isolation.providers();
    let main = |version: Option<&str>, settings: &toml::Table| {
        let v = version
            .map(|v| format!("version = {}, ", nickel_literal(&json!(v))))
            .unwrap_or_default();
        format!(
            "{{\n  {local}\n  servers = {{ t1 = {{ provider = \"local\", taskservs = {{ \"{name}\" = {{ {v}settings = {} }} }} }} }},\n}}\n",
            lit(settings)
        )
    };
    let address = format!("taskserv.t1.{name}");
    let status = |ws: &mut Scratch, want: Option<&str>| -> Result<(), String> {
        let v = ws.json(&["taskserv", "status", &address, "--json"])?;
        let entry = v
            .as_array()
            .and_then(|a| a.iter().find(|e| e["address"] == address.as_str()))
            .ok_or_else(|| format!("`prov taskserv status` does not list {address}: {v}"))?;
        let r = &entry["result"];
        if !(r["installed"] == true && r["running"] == true && r["healthy"] != false) {
            return Err(format!(
                "{address} is not installed, running and healthy: {entry}"
            ));
        }
        if let Some(w) = want {
            if r["version"].as_str() != Some(w) {
                return Err(format!(
                    "{address}: version {} installed, {w} wanted",
                    r["version"]
                ));
            }
        }
        Ok(())
    };
    let settled = |ws: &mut Scratch| -> Result<(), String> {
        match ws.prov(&["plan", "--detailed-exitcode", "--no-cost"]) {
            Out { code: 0, .. } => Ok(()),
            o => Err(format!(
                "the plan after the apply is not empty:\n{}{}",
                o.stdout, o.stderr
            )),
        }
    };
    let skip: Vec<(usize, String)> = match &t.upgrade {
        Some(_) => Vec::new(),
        None => vec![(
            3,
            "skipped: tests/integration.toml names no version to upgrade to (its source offers one)"
                .to_string(),
        )],
    };
    steps(
        &["install", "status", "configure", "upgrade", "uninstall"],
        &skip,
        report,
        |i| match i {
            0 => {
                ws.write(&main(t.version.as_deref(), &t.settings))?;
                ws.ok(&["apply", "--auto-approve", "--no-cost"])?;
                settled(ws)
            }
            1 => status(ws, t.version.as_deref()),
            2 => {
                ws.write(&main(t.version.as_deref(), &t.configure))?;
                let plan = ws.ok(&["plan", "--no-cost"])?;
                if !plan.contains("configure") {
                    return Err(format!("the plan does not configure {address}:\n{plan}"));
                }
                ws.ok(&["apply", "--auto-approve", "--no-cost"])?;
                settled(ws)?;
                status(ws, t.version.as_deref())
            }
            3 => {
                let upgrade = t.upgrade.as_deref().unwrap_or_default();
                ws.write(&main(Some(upgrade), &t.configure))?;
                let plan = ws.ok(&["plan", "--no-cost"])?;
                if !plan.contains("upgrade") {
                    return Err(format!("the plan does not upgrade {address}:\n{plan}"));
                }
                ws.ok(&["apply", "--auto-approve", "--no-cost"])?;
                settled(ws)?;
                status(ws, Some(upgrade))
            }
            _ => {
                ws.ok(&["destroy", "--auto-approve", "--no-cost"])?;
                ws.applied = false;
                empty_state(ws)
            }
        },
    )
}

fn empty_state(ws: &mut Scratch) -> Result<(), String> {
    let left = ws.ok(&["state", "list"])?;
    if left.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("the state still holds:\n{left}"))
    }
}

fn cluster(
    ext: &Extension,
    c: ClusterTest,
    ws: &mut Scratch,
    report: &mut dyn FnMut(&Step),
) -> Vec<Step> {
    let name = ext.name.to_string();
    let servers: Vec<String> = (1..=c.servers).map(|i| format!("c{i}")).collect();
    let local = c.isolation.providers();
    let main = |version: &str, replicas: u32| {
        let decl: Vec<String> = servers
            .iter()
            .map(|s| format!("\"{s}\" = {{ provider = \"local\" }}"))
            .collect();
        format!(
            "{{\n  {local}\n  servers = {{ {} }},\n  clusters = {{ \"{name}\" = {{\n    implementation = \"{name}\",\n    servers = {},\n    version = {},\n    components = [{{ name = {}, type = '{}, config = {}, resources = {{ replicas = {replicas} }} }}],\n  }} }},\n}}\n",
            decl.join(", "),
            nickel_literal(&json!(servers)),
            nickel_literal(&json!(version)),
            nickel_literal(&json!(c.component)),
            c.kind,
            lit(&c.config),
        )
    };
    let status = |ws: &mut Scratch, version: &str, replicas: u32| -> Result<(), String> {
        let v = ws.json(&["cluster", "status", &name, "--json"])?;
        let reports: Vec<Value> = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        let comp = reports
            .iter()
            .flat_map(|r| r["components"].as_array().cloned().unwrap_or_default())
            .find(|x| x["name"] == c.component.as_str())
            .ok_or_else(|| {
                format!(
                    "`prov cluster status` does not list component {}",
                    c.component
                )
            })?;
        let st = &comp["status"];
        if st["status"] != "running" {
            return Err(format!("component {} is not running: {comp}", c.component));
        }
        if st["replicas"].as_u64() != Some(u64::from(replicas)) {
            return Err(format!(
                "component {}: {} replicas running, {replicas} wanted",
                c.component, st["replicas"]
            ));
        }
        if st["version"].as_str() != Some(version) {
            return Err(format!(
                "component {}: version {} installed, {version} wanted",
                c.component, st["version"]
            ));
        }
        Ok(())
    };
    let apply =
        |ws: &mut Scratch, version: &str, replicas: u32, must: &str| -> Result<(), String> {
            ws.write(&main(version, replicas))?;
            if !must.is_empty() {
                let plan = ws.ok(&["plan", "--no-cost"])?;
                if !plan.contains(must) {
                    return Err(format!("the plan does not {must}:\n{plan}"));
                }
            }
            ws.ok(&["apply", "--auto-approve", "--no-cost"])?;
            match ws.prov(&["plan", "--detailed-exitcode", "--no-cost"]) {
                Out { code: 0, .. } => Ok(()),
                o => Err(format!(
                    "the plan after the apply is not empty:\n{}{}",
                    o.stdout, o.stderr
                )),
            }
        };
    steps(
        &["create", "status", "scale", "upgrade", "delete"],
        &[],
        report,
        |i| match i {
            0 => apply(ws, &c.version, c.replicas, ""),
            1 => status(ws, &c.version, c.replicas),
            2 => {
                apply(ws, &c.version, c.scale, "scale")?;
                status(ws, &c.version, c.scale)
            }
            3 => {
                apply(ws, &c.upgrade, c.scale, "upgrade")?;
                status(ws, &c.upgrade, c.scale)
            }
            _ => {
                ws.ok(&["destroy", "--auto-approve", "--no-cost"])?;
                ws.applied = false;
                empty_state(ws)
            }
        },
    )
}

fn provider(
    ext: &Extension,
    p: ProviderTest,
    ws: &mut Scratch,
    report: &mut dyn FnMut(&Step),
) -> Vec<Step> {
    let name = ext.name.to_string();
    let main = format!(
        "{{\n  providers = {{ \"{name}\" = {} }},\n  servers = {{ p1 = {{ provider = \"{name}\", plan = {}, zone = {} }} }},\n}}\n",
        lit(&p.settings),
        nickel_literal(&json!(p.plan)),
        nickel_literal(&json!(p.zone)),
    );
    let state_is = |ws: &mut Scratch, want: &str| -> Result<(), String> {
        let v = ws.json(&["server", "info", "p1", "--json"])?;
        let status = v["status"]
            .as_str()
            .or_else(|| v["info"]["status"].as_str())
            .or_else(|| v["server"]["status"].as_str());
        if status == Some(want) {
            Ok(())
        } else {
            Err(format!("server p1 should be {want}: {v}"))
        }
    };
    steps(
        &["create", "info", "stop", "start", "delete"],
        &[],
        report,
        |i| match i {
            0 => {
                ws.write(&main)?;
                ws.ok(&["apply", "--auto-approve"])?;
                match ws.prov(&["plan", "--detailed-exitcode"]) {
                    Out { code: 0, .. } => Ok(()),
                    o => Err(format!(
                        "the plan after the apply is not empty:\n{}{}",
                        o.stdout, o.stderr
                    )),
                }
            }
            1 => state_is(ws, "running"),
            2 => {
                ws.ok(&["server", "stop", "p1"])?;
                state_is(ws, "stopped")
            }
            3 => {
                ws.ok(&["server", "start", "p1"])?;
                state_is(ws, "running")
            }
            _ => {
                ws.ok(&["destroy", "--auto-approve"])?;
                ws.applied = false;
                empty_state(ws)?;
                let left = ws.json(&["server", "list", "--json"])?;
                if left.to_string().contains("\"p1\"") {
                    return Err(format!("the provider still lists p1: {left}"));
                }
                Ok(())
            }
        },
    )
}
