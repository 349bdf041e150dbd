//! Extension-directory taskservs: a directory with `manifest.toml`, `schemas/*.ncl`,
//! `templates/*.j2` and `scripts/*.sh` becomes a `TaskServ`. Settings are checked against
//! `schemas/settings.ncl`, templates are rendered with minijinja and uploaded, scripts run
//! through the server's transport (local process or SSH), and a health check gates every
//! install, configure, upgrade and restart. See docs/taskservs.md for the contract.

use crate::transport::{self, RunOutput, SshOptions, Transport, TransportError, TAIL_LINES};
use async_trait::async_trait;
use prov_engine::extension::{Extension, ExtensionKind};
use prov_engine::registry::{ExtContext, TaskservFactory};
use prov_engine::traits::{
    ErrorKind, ExtError, ExtResult, TaskServ, TaskservRequest, TaskservResult, TaskservStatus,
    UpdateCheck, Validation, VersionNeed,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `[taskserv]` section of `manifest.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Seconds each script may run (default 600).
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Rendered files: template (under `templates/`) → absolute path on the server. Without
    /// any, every `templates/X.j2` goes to `/etc/prov/NAME/X`.
    #[serde(default)]
    pub files: Vec<FileSpec>,
    /// The health check run after install/configure/upgrade/restart.
    #[serde(default)]
    pub health: Option<HealthSpec>,
    /// Outputs recorded in the state (templates over the same context), e.g.
    /// `endpoint = "{{ server.address }}:{{ settings.port }}"`.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

fn default_timeout() -> u64 {
    600
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    pub template: String,
    pub path: String,
    /// Octal, e.g. "0640" (default "0644").
    #[serde(default)]
    pub mode: Option<String>,
}

/// A health check: an HTTP endpoint (checked from prov) or a command (run on the server), with
/// an expected substring of the body/output. Strings are templates over the render context.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct HealthSpec {
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub command: Option<String>,
    #[serde(default)]
    pub expect: Option<String>,
    /// Seconds per attempt.
    #[serde(default = "default_health_timeout")]
    pub timeout: f64,
    /// Attempts after the first.
    #[serde(default = "default_health_retries")]
    pub retries: u32,
    /// Seconds between attempts.
    #[serde(default = "default_health_interval")]
    pub interval: f64,
}

fn default_health_timeout() -> f64 {
    5.0
}
fn default_health_retries() -> u32 {
    10
}
fn default_health_interval() -> f64 {
    1.0
}

/// One extension-directory taskserv.
pub struct ExtTaskserv {
    pub ext: Extension,
    pub spec: Spec,
    pub ssh: SshOptions,
    /// Script file names (without `.sh`) by operation, where they differ from the operation's
    /// name: a cluster component's `deploy.sh` is its install ([`COMPONENT_SCRIPTS`]).
    pub scripts: &'static [(&'static str, &'static str)],
    /// What a plan refuses about the extension as found on the search path: dependencies
    /// outside their version requirement, cycles (see `check::unmet_dependencies`).
    pub problems: Vec<String>,
    /// `schemas/version.ncl` as evaluated once per workspace (it is read by every instance's
    /// validate, version listing and upgrade): the value, or the error message.
    version: tokio::sync::OnceCell<Result<Value, String>>,
}

/// The scripts of a cluster's application/infrastructure component: `deploy.sh` installs,
/// `remove.sh` uninstalls; the others keep their names.
pub const COMPONENT_SCRIPTS: &[(&str, &str)] = &[("install", "deploy"), ("uninstall", "remove")];

impl ExtTaskserv {
    /// A taskserv over `ext` whose scripts are named as `scripts` says (see [`COMPONENT_SCRIPTS`]).
    pub fn with_scripts(
        ext: Extension,
        spec: Spec,
        ssh: SshOptions,
        scripts: &'static [(&'static str, &'static str)],
    ) -> ExtTaskserv {
        ExtTaskserv {
            ext,
            spec,
            ssh,
            scripts,
            problems: Vec::new(),
            version: Default::default(),
        }
    }
}

/// Reads the `[taskserv]` section (an empty one when absent).
pub fn spec_of(ext: &Extension) -> Result<Spec, prov_engine::extension::ExtensionError> {
    Ok(ext.section::<Spec>("taskserv")?.unwrap_or(Spec {
        timeout: default_timeout(),
        ..Spec::default()
    }))
}

/// The factory registered for `ext`; `problems` are what its validate reports at every plan
/// that uses it (see [`ExtTaskserv::problems`]).
pub fn factory(ext: Extension, spec: Spec, problems: Vec<String>) -> TaskservFactory {
    Arc::new(move |ctx: &ExtContext| {
        let mut t = ExtTaskserv::with_scripts(
            ext.clone(),
            spec.clone(),
            SshOptions::for_workspace(&ctx.workspace_dir),
            &[],
        );
        t.problems = problems.clone();
        Ok(Arc::new(t) as Arc<dyn TaskServ>)
    })
}

/// Helpers every script gets in front of it (see docs/taskservs.md, "Script helpers").
const PRELUDE: &str = r#"set -euo pipefail
prov_log() { echo "[$PROV_TASKSERV] $*" >&2; }
# systemd runs, and this script is in its network namespace (a unit would not be in a sandbox's).
prov_has_systemd() {
  [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1 \
    && [ "$(readlink /proc/self/ns/net 2>/dev/null)" = "$(readlink /proc/1/ns/net 2>/dev/null)" ]
}
# prov_apt_install PACKAGE [VERSION]: installs (idempotently) the package, at the candidate
# whose upstream version starts with VERSION when one is given.
prov_apt_install() {
  local pkg="$1" want="${2:-}" full=""
  if [ -n "$want" ] && [ "$want" != latest ]; then
    full=$(apt-cache madison "$pkg" 2>/dev/null | awk -v w="$want" '{v=$3; sub(/^[0-9]+:/, "", v); if (index(v, w) == 1) {print $3; exit}}')
    [ -n "$full" ] || { echo "no $pkg package of version $want (apt-cache madison $pkg)" >&2; return 1; }
    full="=$full"
  fi
  if [ -z "$full" ] && dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
    return 0
  fi
  # The distribution's own service is not started by the package: prov runs its instance.
  local made="" rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made=1
  fi
  # Other installs on the machine hold the dpkg lock for a while: wait for it.
  local opts=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confold --no-install-recommends)
  DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$pkg$full" >&2 \
    || { apt-get -o DPkg::Lock::Timeout=600 update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$pkg$full" >&2; } || rc=$?
  [ -z "$made" ] || rm -f /usr/sbin/policy-rc.d
  return $rc
}
# prov_pkg_version PACKAGE: the installed upstream version (epoch and Debian revision removed).
prov_pkg_version() {
  dpkg-query -W -f='${Version}' "$1" 2>/dev/null | sed -e 's/^[0-9]*://' -e 's/-[^-]*$//' -e 's/[+~].*$//'
}
# prov_pid_alive PIDFILE: the process in PIDFILE is running (a zombie left to an init that
# does not reap, as in some containers, counts as stopped).
prov_pid_alive() {
  [ -s "$1" ] || return 1
  local p; p="$(cat "$1")"
  kill -0 "$p" 2>/dev/null || return 1
  local st; st="$(sed -e 's/.*) //' "/proc/$p/stat" 2>/dev/null)"
  [ "${st:0:1}" != "Z" ] || return 1
  # A process started after the pid file was written is another one that got the number back
  # (pid_max is 32768 on many machines): the one in the file is gone. 2 s of slack for clocks.
  local ticks btime hz written
  ticks="$(echo "$st" | awk '{print $20}')"
  btime="$(awk '/^btime/ {print $2}' /proc/stat 2>/dev/null)"
  hz="$(getconf CLK_TCK 2>/dev/null || echo 100)"
  written="$(stat -c %Y "$1" 2>/dev/null)"
  if [ -n "$ticks" ] && [ -n "$btime" ] && [ -n "$written" ]; then
    [ $(( btime + ticks / hz )) -le $(( written + 2 )) ] || return 1
  fi
  return 0
}
# prov_stop_pid PIDFILE: stops it (TERM, then KILL after 10s) and removes the file.
prov_stop_pid() {
  local f="$1" i
  if prov_pid_alive "$f"; then
    kill "$(cat "$f")" 2>/dev/null || true
    for i in $(seq 1 50); do prov_pid_alive "$f" || break; sleep 0.2; done
    prov_pid_alive "$f" && kill -9 "$(cat "$f")" 2>/dev/null || true
  fi
  rm -f "$f"
}
"#;

fn err(
    t: &ExtTaskserv,
    op: &str,
    req: &TaskservRequest,
    kind: ErrorKind,
    msg: impl Into<String>,
) -> ExtError {
    ExtError::new(t.ext.name.as_str(), op, Some(&req.address), kind, msg)
}

/// Versions compared by their numeric dotted parts (`1.10.0` > `1.9.2`), text parts as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-', '+', '~'])
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let (x, y) = (pa.get(i), pb.get(i));
        let o = match (x, y) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => match (x.parse::<u64>(), y.parse::<u64>()) {
                (Ok(m), Ok(n)) => m.cmp(&n),
                _ => x.cmp(y),
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// A Debian version (`5:7.0.15-1~deb12u1`) as its upstream part (`7.0.15`).
pub fn upstream_version(v: &str) -> String {
    let v = v.split_once(':').map(|(_, r)| r).unwrap_or(v);
    let v = v.rsplit_once('-').map(|(l, _)| l).unwrap_or(v);
    v.split(['+', '~']).next().unwrap_or(v).to_string()
}

/// Rendered files: (absolute server path, contents, mode).
pub type Rendered = Vec<(String, Vec<u8>, u32)>;

impl ExtTaskserv {
    fn name(&self) -> &str {
        self.ext.name.as_str()
    }
    fn dir(&self) -> &Path {
        &self.ext.dir
    }

    /// Settings checked against `schemas/settings.ncl` (defaults filled), or as given when the
    /// extension has no settings schema.
    pub async fn checked_settings(&self, req: &TaskservRequest, op: &str) -> ExtResult<Value> {
        let schema = self.dir().join("schemas").join("settings.ncl");
        if !schema.is_file() {
            return Ok(req.settings.clone());
        }
        let settings = req.settings.clone();
        let s2 = schema.clone();
        let r =
            tokio::task::spawn_blocking(move || prov_engine::config::check_against(&s2, &settings))
                .await
                .map_err(|e| err(self, op, req, ErrorKind::Failed, e.to_string()))?;
        r.map_err(|e| {
            err(
                self,
                op,
                req,
                ErrorKind::Invalid,
                format!("settings do not satisfy {}:\n{e}", schema.display()),
            )
        })
    }

    /// `schemas/version.ncl` evaluated (`Value::Null` when absent); a taskserv's is checked
    /// against the seed's TaskservVersion contract (defaults filled), as `prov extension
    /// validate` does, so what validate refuses no plan uses. Evaluated once per workspace.
    async fn version_schema(&self, req: &TaskservRequest, op: &str) -> ExtResult<Value> {
        let file = self.dir().join("schemas").join("version.ncl");
        if !file.is_file() {
            return Ok(Value::Null);
        }
        let contract = self.ext.manifest.extension.kind == ExtensionKind::Taskserv;
        let got = self
            .version
            .get_or_init(|| async move {
                let f2 = file.clone();
                let r = tokio::task::spawn_blocking(move || {
                    if contract {
                        prov_engine::config::check_file_against_library(&f2, "TaskservVersion")
                    } else {
                        prov_engine::config::eval_file(&f2)
                    }
                })
                .await;
                match r {
                    Err(e) => Err(e.to_string()),
                    Ok(Err(e)) if contract => Err(format!(
                        "{} does not satisfy the seed's TaskservVersion contract:\n{e}",
                        file.display()
                    )),
                    Ok(Err(e)) => Err(format!("{}:\n{e}", file.display())),
                    Ok(Ok(v)) => Ok(v),
                }
            })
            .await;
        got.clone()
            .map_err(|m| err(self, op, req, ErrorKind::Invalid, m))
    }

    /// The taskservs `schemas/version.ncl` says this one needs on its server, with versions.
    fn needs(schema: &Value, file: &Path) -> Vec<VersionNeed> {
        schema
            .get("dependencies")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|d| {
                Some(VersionNeed {
                    name: d.get("name")?.as_str()?.to_string(),
                    version: d.get("version")?.as_str()?.to_string(),
                    declared_in: file.display().to_string(),
                })
            })
            .collect()
    }

    /// The address scripts and health checks use for the server: its private or public IP, or
    /// the SSH host, or loopback for a local server without one.
    fn server_address(
        req: &TaskservRequest,
        transport: Option<&prov_engine::traits::TransportSpec>,
    ) -> String {
        let f = &req.server.facts;
        for k in ["private_ip", "public_ip", "address", "ip"] {
            if let Some(s) = f.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                return s.to_string();
            }
        }
        if let Some(prov_engine::traits::TransportSpec::Ssh { access, .. }) = transport {
            return access.host.clone();
        }
        "127.0.0.1".into()
    }

    /// The template context: taskserv, server (facts and address), settings, root.
    fn context(&self, req: &TaskservRequest, settings: &Value, address: &str, root: &str) -> Value {
        let mut server = Map::new();
        if let Value::Object(f) = &req.server.facts {
            server.extend(f.clone());
        }
        server.insert("facts".into(), req.server.facts.clone());
        server.insert("address".into(), json!(address));
        server.insert("hostname".into(), json!(req.server.hostname));
        server.insert(
            "name".into(),
            json!(req.server.address.rsplit('.').next().unwrap_or_default()),
        );
        server.insert("id".into(), json!(req.server.provider_id));
        json!({
            "taskserv": {
                "name": self.name(),
                "address": req.address,
                "version": req.version,
            },
            "server": server,
            "settings": settings,
            "root": root,
        })
    }

    /// Renders one template string (health check fields, outputs); `what` names it in errors.
    fn render_str(&self, what: &str, src: &str, ctx: &Value) -> Result<String, String> {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.render_named_str(what, src, ctx)
            .map_err(|e| render_error(what, &e))
    }

    /// Renders every template: (server path, contents, mode). Errors name the template file and line.
    pub fn render(&self, ctx: &Value) -> Result<Rendered, String> {
        let tdir = self.dir().join("templates");
        let mut files = self.spec.files.clone();
        if files.is_empty() {
            let mut names: Vec<String> = std::fs::read_dir(&tdir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| n.ends_with(".j2"))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            files = names
                .into_iter()
                .map(|n| FileSpec {
                    path: format!("/etc/prov/{}/{}", self.name(), n.trim_end_matches(".j2")),
                    template: n,
                    mode: None,
                })
                .collect();
        }
        let mut out = Vec::new();
        for f in files {
            let path = tdir.join(&f.template);
            let shown = path.display().to_string();
            let src = std::fs::read_to_string(&path).map_err(|e| format!("{shown}: {e}"))?;
            let text = render_file(&shown, &src, ctx)?;
            let mode = match &f.mode {
                None => 0o644,
                Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8).map_err(|_| {
                    format!(
                        "{}: [taskserv.files] mode {m:?} is not octal",
                        self.dir().join("manifest.toml").display()
                    )
                })?,
            };
            let dest = self.render_str(
                &format!("[taskserv.files] path of {}", f.template),
                &f.path,
                ctx,
            )?;
            if !dest.starts_with('/') {
                return Err(format!(
                    "{}: [taskserv.files] path {dest:?} must be absolute",
                    self.dir().join("manifest.toml").display()
                ));
            }
            out.push((dest, text.into_bytes(), mode));
        }
        Ok(out)
    }

    /// Everything an operation needs: transport, checked settings, context, rendered files.
    async fn prepare(&self, req: &TaskservRequest, op: &str) -> ExtResult<Prepared> {
        let settings = self.checked_settings(req, op).await?;
        let spec = req
            .server
            .provider
            .transport(&req.server.provider_id)
            .await?;
        let transport = transport::open(&spec, &self.ssh);
        let address = Self::server_address(req, Some(&spec));
        let ctx = self.context(req, &settings, &address, &transport.root());
        let files = self
            .render(&ctx)
            .map_err(|m| err(self, op, req, ErrorKind::Invalid, m))?;
        Ok(Prepared {
            transport,
            settings,
            ctx,
            files,
            address,
        })
    }

    fn files_hash(files: &Rendered) -> String {
        let mut h = Sha256::new();
        for (p, c, m) in files {
            h.update(p.as_bytes());
            h.update([0]);
            h.update(m.to_le_bytes());
            h.update(c);
            h.update([0]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    async fn upload(&self, req: &TaskservRequest, op: &str, p: &Prepared) -> ExtResult<()> {
        for (path, content, mode) in &p.files {
            p.transport
                .upload(path, content, *mode)
                .await
                .map_err(|e| transport_error(self, op, req, &*p.transport, e))?;
        }
        Ok(())
    }

    /// The environment of a script (see docs/taskservs.md, "Scripts").
    fn env(
        &self,
        req: &TaskservRequest,
        op: &str,
        p: &Prepared,
        version: Option<&str>,
    ) -> BTreeMap<String, String> {
        let root = p.transport.root();
        let mut env = BTreeMap::new();
        env.insert("PROV_OPERATION".into(), op.to_string());
        env.insert("PROV_TASKSERV".into(), self.name().to_string());
        env.insert("PROV_ADDRESS".into(), req.address.clone());
        env.insert("PROV_SERVER".into(), req.server.hostname.clone());
        env.insert("PROV_SERVER_ADDRESS".into(), p.address.clone());
        env.insert("PROV_ROOT".into(), root.clone());
        env.insert(
            "PROV_CONF_DIR".into(),
            format!("{root}/etc/prov/{}", self.name()),
        );
        env.insert(
            "PROV_STATE_DIR".into(),
            format!("{root}/var/lib/prov/{}", self.name()),
        );
        env.insert("PROV_VERSION".into(), version.unwrap_or("").to_string());
        env.insert("PROV_SETTINGS".into(), p.settings.to_string());
        env.insert(
            "PROV_FILES".into(),
            p.files
                .iter()
                .map(|(f, _, _)| f.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
        );
        if let Value::Object(o) = &p.settings {
            for (k, v) in o {
                let key: String = k
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() {
                            c.to_ascii_uppercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let val = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(_) | Value::Bool(_) => v.to_string(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                env.insert(format!("PROV_SETTING_{key}"), val);
            }
        }
        env
    }

    /// The script file of `op` (`scripts/OP.sh`, or its renamed file).
    fn script_name<'a>(&self, op: &'a str) -> &'a str {
        self.scripts
            .iter()
            .find(|(o, _)| *o == op)
            .map(|(_, f)| *f)
            .unwrap_or(op)
    }

    fn script(&self, op: &str) -> Option<(PathBuf, String)> {
        let path = self
            .dir()
            .join("scripts")
            .join(format!("{}.sh", self.script_name(op)));
        std::fs::read_to_string(&path).ok().map(|s| (path, s))
    }

    /// Runs `scripts/OP.sh`; a non-zero exit is an error with its code and stderr tail.
    async fn run_script(
        &self,
        req: &TaskservRequest,
        op: &str,
        p: &Prepared,
        version: Option<&str>,
        stream: bool,
    ) -> ExtResult<RunOutput> {
        let (path, body) = self.script(op).ok_or_else(|| {
            err(
                self,
                op,
                req,
                ErrorKind::Unsupported,
                format!(
                    "{} has no scripts/{}.sh",
                    self.dir().display(),
                    self.script_name(op)
                ),
            )
        })?;
        let out = self.run_raw(req, op, p, version, &body, stream).await?;
        if !out.success() {
            let code = out
                .code
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "killed by a signal".into());
            return Err(err(
                self,
                op,
                req,
                ErrorKind::Failed,
                format!(
                    "{} failed with {code} on {}; last lines of its output:\n{}",
                    path.display(),
                    p.transport.describe(),
                    out.tail(TAIL_LINES)
                ),
            ));
        }
        Ok(out)
    }

    async fn run_raw(
        &self,
        req: &TaskservRequest,
        op: &str,
        p: &Prepared,
        version: Option<&str>,
        body: &str,
        stream: bool,
    ) -> ExtResult<RunOutput> {
        let env = self.env(req, op, p, version);
        // scripts/lib.sh, when present, holds helpers shared by the extension's scripts.
        let lib =
            std::fs::read_to_string(self.dir().join("scripts").join("lib.sh")).unwrap_or_default();
        let script = format!("{PRELUDE}\n{lib}\n{body}");
        let output = if stream { req.output.as_ref() } else { None };
        p.transport
            .run(
                &script,
                &env,
                Duration::from_secs(self.spec.timeout.max(1)),
                output,
            )
            .await
            .map_err(|e| transport_error(self, op, req, &*p.transport, e))
    }

    /// The health check in force: the configuration's, else the manifest's.
    fn health(&self, req: &TaskservRequest) -> ExtResult<Option<HealthSpec>> {
        match &req.health_check {
            Some(v) if !v.is_null() => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
                err(
                    self,
                    "health-check",
                    req,
                    ErrorKind::Invalid,
                    format!("health_check: {e}"),
                )
            }),
            _ => Ok(self.spec.health.clone()),
        }
    }

    /// One attempt of the health check: Ok(()) or why it did not pass.
    async fn health_once(
        &self,
        req: &TaskservRequest,
        p: &Prepared,
        h: &HealthSpec,
    ) -> Result<(), String> {
        let expect = match &h.expect {
            Some(e) => Some(self.render_str("health expect", e, &p.ctx)?),
            None => None,
        };
        let timeout = bounded_secs(h.timeout, 0.1);
        if let Some(cmd) = &h.command {
            let cmd = self.render_str("health command", cmd, &p.ctx)?;
            let env = self.env(req, "health-check", p, req.version.as_deref());
            let lib = std::fs::read_to_string(self.dir().join("scripts").join("lib.sh"))
                .unwrap_or_default();
            let out = p
                .transport
                .run(&format!("{PRELUDE}\n{lib}\n{cmd}"), &env, timeout, None)
                .await
                .map_err(|e| format!("command `{cmd}`: {e}"))?;
            if !out.success() {
                return Err(format!(
                    "command `{cmd}` exited with {}: {}",
                    out.code
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "a signal".into()),
                    out.tail(3)
                ));
            }
            if let Some(e) = &expect {
                // Some tools (etcdctl) report on stderr: either stream may carry the answer.
                let printed = format!("{}{}", out.stdout, out.stderr);
                if !printed.contains(e.as_str()) {
                    return Err(format!(
                        "command `{cmd}` printed {:?}, expected {e:?}",
                        printed.trim()
                    ));
                }
            }
            return Ok(());
        }
        if let Some(ep) = &h.endpoint {
            let url = self.render_str("health endpoint", ep, &p.ctx)?;
            let (status, body) = tokio::time::timeout(timeout, http_get(&url))
                .await
                .map_err(|_| format!("endpoint {url}: no answer within {:?}", timeout))??;
            if !(200..300).contains(&status) {
                return Err(format!("endpoint {url} answered HTTP {status}"));
            }
            if let Some(e) = &expect {
                if !body.contains(e.as_str()) {
                    return Err(format!(
                        "endpoint {url} answered {:?}, expected {e:?}",
                        body.trim()
                    ));
                }
            }
            return Ok(());
        }
        Err("health check has neither `endpoint` nor `command`".into())
    }

    /// The health gate: attempts until one passes; the operation fails when none does.
    async fn health_gate(&self, req: &TaskservRequest, op: &str, p: &Prepared) -> ExtResult<()> {
        let Some(h) = self.health(req)? else {
            return Ok(());
        };
        let mut last = String::new();
        for attempt in 0..=h.retries {
            if attempt > 0 {
                tokio::time::sleep(bounded_secs(h.interval, 0.0)).await;
            }
            match self.health_once(req, p, &h).await {
                Ok(()) => {
                    if let Some(o) = &req.output {
                        o("health check passed");
                    }
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(err(
            self,
            op,
            req,
            ErrorKind::Failed,
            format!(
                "health check failed after {} attempt(s): {last}",
                h.retries + 1
            ),
        ))
    }

    fn outputs(&self, p: &Prepared) -> ExtResult<Value> {
        let mut m = Map::new();
        m.insert("files_hash".into(), json!(Self::files_hash(&p.files)));
        m.insert(
            "files".into(),
            json!(p
                .files
                .iter()
                .map(|(f, _, _)| f.clone())
                .collect::<Vec<_>>()),
        );
        m.insert("server_address".into(), json!(p.address));
        for (k, t) in &self.spec.outputs {
            let v = self
                .render_str(&format!("[taskserv.outputs] {k}"), t, &p.ctx)
                .map_err(|m| ExtError::new(self.name(), "outputs", None, ErrorKind::Invalid, m))?;
            m.insert(k.clone(), json!(v));
        }
        Ok(Value::Object(m))
    }

    async fn current_version_with(
        &self,
        req: &TaskservRequest,
        p: &Prepared,
    ) -> ExtResult<Option<String>> {
        if let Some((_, body)) = self.script("version") {
            let out = self
                .run_raw(req, "version", p, req.version.as_deref(), &body, false)
                .await?;
            if !out.success() {
                return Ok(None);
            }
            let v = out
                .stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .trim()
                .to_string();
            return Ok(Some(v).filter(|v| !v.is_empty()));
        }
        Ok(self.status_with(req, p).await?.version)
    }

    async fn status_with(&self, req: &TaskservRequest, p: &Prepared) -> ExtResult<TaskservStatus> {
        let (path, body) = self.script("status").ok_or_else(|| {
            err(
                self,
                "status",
                req,
                ErrorKind::Unsupported,
                format!("{} has no scripts/status.sh", self.dir().display()),
            )
        })?;
        let out = self
            .run_raw(req, "status", p, req.version.as_deref(), &body, false)
            .await?;
        let version = out
            .stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("version="))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty());
        let (installed, running) =
            match out.code {
                Some(0) => (true, true),
                Some(3) => (true, false),
                Some(4) => (false, false),
                other => {
                    return Err(err(
                        self,
                        "status",
                        req,
                        ErrorKind::Failed,
                        format!(
                        "{} exited with {} (expected 0 running, 3 stopped, 4 not installed): {}",
                        path.display(),
                        other.map(|c| c.to_string()).unwrap_or_else(|| "a signal".into()),
                        out.tail(TAIL_LINES)
                    ),
                    ))
                }
            };
        let healthy = match (running, self.health(req)?) {
            (true, Some(h)) => Some(self.health_once(req, p, &h).await.is_ok()),
            _ => None,
        };
        Ok(TaskservStatus {
            installed,
            running,
            version,
            healthy,
            detail: json!({"transport": p.transport.describe(), "output": out.stdout.trim()}),
        })
    }

    /// The versions the source in `schemas/version.ncl` offers, newest last.
    async fn available_with(
        &self,
        req: &TaskservRequest,
        p: Option<&Prepared>,
    ) -> ExtResult<Vec<String>> {
        let op = "get-available-versions";
        let schema = self.version_schema(req, op).await?;
        let source = schema.get("source").cloned().unwrap_or(Value::Null);
        let kind = source.get("type").and_then(Value::as_str).unwrap_or("list");
        let mut versions: Vec<String> = match kind {
            "list" => self.listed_versions(req, op, &source)?,
            "apt" | "command" => {
                let Some(p) = p else {
                    return Ok(Vec::new());
                };
                self.probed_versions(req, op, p, kind, &source).await?
            }
            other => {
                return Err(err(
                    self,
                    op,
                    req,
                    ErrorKind::Unsupported,
                    format!(
                        "{}: source type {other:?} is not supported (list, apt, command)",
                        self.dir().join("schemas/version.ncl").display()
                    ),
                ))
            }
        };
        versions.sort_by(|a, b| compare_versions(a, b));
        versions.dedup();
        Ok(versions)
    }

    /// A `list` source's versions: those it names, then the lines of its `file` (not blank, not `#`).
    fn listed_versions(
        &self,
        req: &TaskservRequest,
        op: &str,
        source: &Value,
    ) -> ExtResult<Vec<String>> {
        let mut v: Vec<String> = source
            .get("versions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(f) = source.get("file").and_then(Value::as_str) {
            let path = self.dir().join(f);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                err(
                    self,
                    op,
                    req,
                    ErrorKind::Invalid,
                    format!("{}: {e}", path.display()),
                )
            })?;
            v.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        Ok(v)
    }

    /// An `apt` or `command` source's versions: one a line of what runs on the target (apt's
    /// reduced to their upstream part by `upstream_version`).
    async fn probed_versions(
        &self,
        req: &TaskservRequest,
        op: &str,
        p: &Prepared,
        kind: &str,
        source: &Value,
    ) -> ExtResult<Vec<String>> {
        let cmd = if kind == "apt" {
            let pkg = source
                .get("package")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    err(
                        self,
                        op,
                        req,
                        ErrorKind::Invalid,
                        format!(
                            "{}: source.package is missing",
                            self.dir().join("schemas/version.ncl").display()
                        ),
                    )
                })?;
            format!(
                "apt-cache madison {} | awk -F'|' '{{gsub(/ /, \"\", $2); print $2}}'",
                transport::shell_quote(pkg)
            )
        } else {
            source
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or("true")
                .to_string()
        };
        let out = self.run_raw(req, op, p, None, &cmd, false).await?;
        if !out.success() {
            return Err(err(
                self,
                op,
                req,
                ErrorKind::Failed,
                format!("`{cmd}` failed: {}", out.tail(5)),
            ));
        }
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(|l| {
                if kind == "apt" {
                    upstream_version(l)
                } else {
                    l.to_string()
                }
            })
            .collect())
    }

    fn result(
        &self,
        version: Option<String>,
        status: &str,
        p: &Prepared,
    ) -> ExtResult<TaskservResult> {
        Ok(TaskservResult {
            version,
            status: status.to_string(),
            outputs: self.outputs(p)?,
        })
    }
}

/// What `prepare` builds.
pub struct Prepared {
    pub transport: Box<dyn Transport>,
    pub settings: Value,
    pub ctx: Value,
    pub files: Rendered,
    pub address: String,
}

/// Renders one template file's text `src` (named `shown` in errors) as apply does: strict
/// undefined variables, the trailing newline kept.
pub fn render_file(shown: &str, src: &str, ctx: &Value) -> Result<String, String> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.render_named_str(shown, src, ctx)
        .map_err(|e| render_error(shown, &e))
}

fn render_error(what: &str, e: &minijinja::Error) -> String {
    let mut m = match e.line() {
        Some(l) => format!("{what}:{l}: {}", e.kind()),
        None => format!("{what}: {}", e.kind()),
    };
    if let Some(d) = e.detail() {
        m.push_str(&format!(": {d}"));
    }
    m
}

fn transport_error(
    t: &ExtTaskserv,
    op: &str,
    req: &TaskservRequest,
    tr: &dyn Transport,
    e: TransportError,
) -> ExtError {
    let kind = match &e {
        TransportError::Timeout(_) => ErrorKind::Timeout,
        TransportError::Auth(_) => ErrorKind::Auth,
        _ => ErrorKind::Failed,
    };
    err(t, op, req, kind, format!("{} ({})", e, tr.describe()))
}

/// A plain HTTP/1.0 GET (health endpoints are checked from prov): status and body.
pub async fn http_get(url: &str) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("endpoint {url}: only http:// endpoints are checked from prov (use a command with curl for https)"))?;
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("endpoint {url}: {e}"))?;
    let host = hostport
        .rsplit_once(':')
        .map(|(h, _)| h)
        .unwrap_or(hostport);
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| format!("endpoint {url}: {e}"))?;
    let mut buf = Vec::new();
    s.take(1 << 20)
        .read_to_end(&mut buf)
        .await
        .map_err(|e| format!("endpoint {url}: {e}"))?;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("endpoint {url}: not an HTTP answer"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

#[async_trait]
impl TaskServ for ExtTaskserv {
    fn name(&self) -> &str {
        self.ext.name.as_str()
    }

    fn output_names(&self) -> Option<Vec<String>> {
        // What `outputs` records: its own three and the manifest's `[taskserv.outputs]`.
        let mut names: Vec<String> = ["files_hash", "files", "server_address"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(self.spec.outputs.keys().cloned());
        Some(names)
    }

    async fn validate(&self, req: &TaskservRequest) -> ExtResult<Validation> {
        let mut v = Validation::default();
        // The scripts every operation needs exist, or the plan fails now rather than the apply
        // half-way (`prov extension validate` reports the same, as its interface rule).
        for op in prov_engine::extension::check::TASKSERV_SCRIPTS {
            let script = self
                .dir()
                .join("scripts")
                .join(format!("{}.sh", self.script_name(op)));
            if !script.is_file() {
                v.errors.push(format!(
                    "{} is missing: {} cannot {op} (prov extension validate {} lists what an extension needs)",
                    script.display(),
                    self.name(),
                    self.dir().display()
                ));
            }
        }
        // A manifest that asks for another prov or extension interface, or dependencies the
        // search path does not satisfy.
        v.errors
            .extend(prov_engine::extension::check::incompatible(&self.ext));
        v.errors.extend(self.problems.iter().cloned());
        // The version descriptor satisfies the seed's contract; what it says this taskserv
        // needs on its server goes to the engine, which sees the siblings.
        match self.version_schema(req, "validate").await {
            Ok(schema) => {
                v.needs = Self::needs(&schema, &self.dir().join("schemas").join("version.ncl"))
            }
            Err(e) => v.errors.push(e.message),
        }
        let settings = match self.checked_settings(req, "validate").await {
            Ok(s) => s,
            Err(e) if e.kind == ErrorKind::Invalid => {
                v.errors.push(e.message);
                return Ok(v);
            }
            Err(e) => return Err(e),
        };
        // Templates must render with these settings. Before the server exists its computed
        // attributes (ids, addresses) are unknown: empty placeholders stand in for them.
        let mut req = req.clone();
        if let Value::Object(f) = &mut req.server.facts {
            for k in req.server.provider.computed_attributes() {
                f.entry(k.to_string()).or_insert(json!(""));
            }
        }
        let req = &req;
        let ctx = self.context(req, &settings, "127.0.0.1", "");
        if let Err(m) = self.render(&ctx) {
            v.errors.push(m);
        }
        if let Err(e) = self.health(req) {
            v.errors.push(e.message);
        }
        // A version pinned in the configuration must be one the shipped release list offers.
        if let Some(want) = req.version.as_deref().filter(|w| *w != "latest") {
            let schema = self.version_schema(req, "validate").await;
            match schema {
                // Reported above.
                Err(_) => {}
                Ok(s)
                    if s.pointer("/source/type")
                        .and_then(Value::as_str)
                        .unwrap_or("list")
                        == "list" =>
                {
                    let offered = self.available_with(req, None).await?;
                    if !offered.is_empty() && !offered.iter().any(|o| o == want) {
                        v.errors.push(format!(
                            "version {want:?} is not offered by {} (offered: {})",
                            self.dir().join("schemas/version.ncl").display(),
                            offered.join(", ")
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
        Ok(v)
    }

    async fn install(&self, req: &TaskservRequest) -> ExtResult<TaskservResult> {
        let p = self.prepare(req, "install").await?;
        self.upload(req, "install", &p).await?;
        self.run_script(req, "install", &p, req.version.as_deref(), true)
            .await?;
        self.health_gate(req, "install", &p).await?;
        let version = self.current_version_with(req, &p).await?;
        self.result(version, "running", &p)
    }

    async fn uninstall(&self, req: &TaskservRequest) -> ExtResult<()> {
        let p = self.prepare(req, "uninstall").await?;
        self.run_script(req, "uninstall", &p, req.version.as_deref(), true)
            .await?;
        Ok(())
    }

    async fn configure(&self, req: &TaskservRequest) -> ExtResult<()> {
        let p = self.prepare(req, "configure").await?;
        self.upload(req, "configure", &p).await?;
        self.run_script(req, "configure", &p, req.version.as_deref(), true)
            .await?;
        self.health_gate(req, "configure", &p).await
    }

    async fn configured_outputs(&self, req: &TaskservRequest) -> ExtResult<Option<Value>> {
        let p = self.prepare(req, "configure").await?;
        Ok(Some(self.outputs(&p)?))
    }

    async fn status(&self, req: &TaskservRequest) -> ExtResult<TaskservStatus> {
        let p = self.prepare(req, "status").await?;
        self.status_with(req, &p).await
    }

    async fn restart(&self, req: &TaskservRequest) -> ExtResult<()> {
        let p = self.prepare(req, "restart").await?;
        let op = if self.script("restart").is_some() {
            "restart"
        } else {
            "configure"
        };
        self.run_script(req, op, &p, req.version.as_deref(), true)
            .await?;
        self.health_gate(req, "restart", &p).await
    }

    async fn upgrade(&self, req: &TaskservRequest, version: &str) -> ExtResult<TaskservResult> {
        let p = self.prepare(req, "upgrade").await?;
        self.upload(req, "upgrade", &p).await?;
        let op = if self.script("upgrade").is_some() {
            "upgrade"
        } else {
            "install"
        };
        self.run_script(req, op, &p, Some(version), true).await?;
        self.health_gate(req, "upgrade", &p).await?;
        let v = self.current_version_with(req, &p).await?;
        self.result(v, "running", &p)
    }

    async fn get_current_version(&self, req: &TaskservRequest) -> ExtResult<Option<String>> {
        let p = self.prepare(req, "get-current-version").await?;
        self.current_version_with(req, &p).await
    }

    async fn get_available_versions(&self, req: &TaskservRequest) -> ExtResult<Vec<String>> {
        let schema = self.version_schema(req, "get-available-versions").await?;
        let local = schema
            .pointer("/source/type")
            .and_then(Value::as_str)
            .unwrap_or("list")
            == "list";
        if local {
            return self.available_with(req, None).await;
        }
        let p = self.prepare(req, "get-available-versions").await?;
        self.available_with(req, Some(&p)).await
    }

    async fn check_updates(&self, req: &TaskservRequest) -> ExtResult<UpdateCheck> {
        let p = self.prepare(req, "check-updates").await?;
        let current = self.current_version_with(req, &p).await?;
        let available = self.available_with(req, Some(&p)).await?;
        let latest = available.last().cloned();
        let update_available = match (&current, &latest) {
            (Some(c), Some(l)) => compare_versions(l, c) == Ordering::Greater,
            (None, Some(_)) => true,
            _ => false,
        };
        Ok(UpdateCheck {
            current,
            latest,
            update_available,
        })
    }
}

/// Seconds from a manifest as a duration from `min` to a day: NaN, infinity or a huge value
/// must not panic `Duration`.
fn bounded_secs(x: f64, min: f64) -> Duration {
    Duration::from_secs_f64(if x.is_nan() {
        min
    } else {
        x.clamp(min, 86_400.0)
    })
}
