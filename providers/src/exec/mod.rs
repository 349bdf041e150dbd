//! `exec` providers: an extension directory (`extensions/providers/NAME/manifest.toml`) whose
//! `[exec]` section names an executable, written in any language. For each operation prov runs
//! it once with one JSON request on stdin and reads one JSON response from stdout (the protocol
//! is documented in docs/exec-protocol.md; its types are [`Request`] and [`Response`]).
//!
//! ```toml
//! [extension]
//! name = "pyprov"
//! type = "provider"
//! version = "0.1.0"
//! [exec]
//! command = "./provider.py"   # relative to the directory, or a program on PATH
//! args = []
//! timeout_secs = 30           # per call; the process group is killed after it
//! replace_on_change = ["zone", "os"]
//! ```
//!
//! Settings (`providers.NAME`) travel on stdin only, never in argv or the environment, and
//! their secret-looking values are blanked out of every error message.

mod check;
pub mod run;

pub use check::check;

use async_trait::async_trait;
use prov_engine::config::{check_settings, SettingsSchema};
use prov_engine::extension::{discover, Extension, ExtensionError, ExtensionKind};
use prov_engine::registry::{ExtContext, ProviderFactory, Registry};
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerUpdate, SshAccess, Validation, Zone,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// The protocol version prov speaks; sent in every request.
pub const PROTOCOL: u32 = 1;

/// One request, written to the executable's stdin.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Request {
    pub protocol: u32,
    pub provider: String,
    pub operation: String,
    pub workspace: WorkspaceRef,
    pub settings: Value,
    pub arguments: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceRef {
    pub dir: String,
    pub name: String,
}

/// One response, read from stdout: exactly one of `result` and `error`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub error: Option<ResponseError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResponseError {
    /// An `ErrorKind` in snake_case: not_found, auth, throttled, timeout, invalid, unsupported,
    /// failed.
    pub code: ErrorKind,
    pub message: String,
}

/// The manifest's `[exec]` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecSection {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub timeout_secs: Option<f64>,
    #[serde(default)]
    pub replace_on_change: Option<Vec<String>>,
}

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Everything needed to build the provider, checked when the directory is registered.
#[derive(Debug, Clone)]
pub struct ExecSpec {
    pub name: String,
    pub version: String,
    pub program: run::Program,
    pub timeout: Duration,
    pub replace_on_change: Option<&'static [&'static str]>,
    /// The extension's `schemas/settings.ncl`: `providers.NAME` is checked against it (defaults
    /// filled) before the program runs, as the engine checks it when a workspace loads.
    pub schema: Option<SettingsSchema>,
}

impl ExecSpec {
    /// Reads and checks an extension's `[exec]` section; errors name the manifest.
    pub fn from_extension(ext: &Extension) -> Result<ExecSpec, ExtensionError> {
        let manifest = ext.dir.join("manifest.toml");
        let bad = |message: String| ExtensionError::Manifest {
            path: manifest.clone(),
            message,
        };
        let section: ExecSection = ext.section("exec")?.ok_or_else(|| {
            bad("missing the [exec] section (command = \"./provider\", optional args, timeout_secs)".into())
        })?;
        if section.command.trim().is_empty() {
            return Err(bad("[exec] command is empty".into()));
        }
        // Absolute, because the program runs with its directory as the working directory.
        let dir = ext
            .dir
            .canonicalize()
            .map_err(|e| bad(format!("cannot resolve the directory: {e}")))?;
        let command = if section.command.contains('/') {
            let p = dir.join(section.command.trim_start_matches("./"));
            if !run::is_executable(&p) {
                return Err(bad(format!(
                    "[exec] command {:?}: {} is not an executable file",
                    section.command,
                    p.display()
                )));
            }
            p
        } else {
            PathBuf::from(&section.command)
        };
        let timeout = match section.timeout_secs {
            None => DEFAULT_TIMEOUT,
            Some(t) if t.is_finite() && t > 0.0 && t < 1e9 => Duration::from_secs_f64(t),
            Some(t) => return Err(bad(format!("[exec] timeout_secs must be > 0, got {t}"))),
        };
        Ok(ExecSpec {
            name: ext.name.to_string(),
            version: ext.manifest.extension.version.clone(),
            program: run::Program {
                command,
                args: section.args,
                dir,
            },
            timeout,
            replace_on_change: section.replace_on_change.map(|v| intern(&v)),
            schema: prov_engine::config::settings::extension_schema(&ext.dir),
        })
    }
}

/// `replace_on_change` must be `&'static` (the trait returns a slice): each distinct list is
/// leaked once per process and shared after that.
fn intern(list: &[String]) -> &'static [&'static str] {
    static LISTS: OnceLock<Mutex<HashMap<Vec<String>, &'static [&'static str]>>> = OnceLock::new();
    let mut m = LISTS
        .get_or_init(Default::default)
        .lock()
        .expect("interned lists");
    m.entry(list.to_vec()).or_insert_with(|| {
        let v: Vec<&'static str> = list
            .iter()
            .map(|s| &*Box::leak(s.clone().into_boxed_str()))
            .collect();
        Box::leak(v.into_boxed_slice())
    })
}

/// Registers every provider extension under `roots` as an exec provider.
pub fn register(
    reg: &mut Registry,
    roots: &[prov_engine::extension::Root],
) -> Result<(), ExtensionError> {
    for ext in discover(roots, ExtensionKind::Provider)? {
        let name = ext.name.to_string();
        if reg.has_provider(&name) {
            return Err(ExtensionError::Manifest {
                path: ext.dir.join("manifest.toml"),
                message: format!(
                    "provider name {name:?} is already a built-in provider; rename the extension ([extension] name)"
                ),
            });
        }
        let spec = Arc::new(ExecSpec::from_extension(&ext)?);
        if let Some(schema) = &spec.schema {
            reg.provider_schema(&name, schema.clone());
        }
        reg.provider(&name, factory(spec));
    }
    Ok(())
}

pub fn factory(spec: Arc<ExecSpec>) -> ProviderFactory {
    Arc::new(move |ctx: &ExtContext| {
        Ok(Arc::new(ExecProvider::new(spec.clone(), ctx)?) as Arc<dyn Provider>)
    })
}

pub struct ExecProvider {
    spec: Arc<ExecSpec>,
    name: String,
    settings: Value,
    workspace: WorkspaceRef,
    timeout: Duration,
    parallelism: Option<usize>,
    /// Secret-looking setting values, blanked out of error messages.
    secrets: Vec<String>,
    /// The executable's `info` answer: what it supports.
    info: tokio::sync::OnceCell<ProviderInfo>,
    /// The settings checked against the extension's schema (as given without one): checked
    /// before the first run of the program, never at load (an untrusted plan builds the
    /// provider only to refuse it).
    checked: tokio::sync::OnceCell<Value>,
}

fn collect_secrets(v: &Value, under_secret: bool, out: &mut Vec<String>) {
    match v {
        Value::String(s) if under_secret && s.len() >= 4 => out.push(s.clone()),
        Value::Object(m) => {
            for (k, x) in m {
                collect_secrets(
                    x,
                    under_secret || prov_engine::sensitive::is_secret_key(k),
                    out,
                )
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_secrets(x, under_secret, out)),
        _ => {}
    }
}

/// The schema of prov's own keys of an exec provider's settings.
pub const OWN_SCHEMA: SettingsSchema = SettingsSchema::Embedded {
    name: "providers/src/exec/settings.ncl",
    source: include_str!("settings.ncl"),
};

/// prov's own keys, as [`OWN_SCHEMA`] checked them.
#[derive(Debug, Default, serde::Deserialize)]
struct OwnSettings {
    parallelism: Option<u64>,
    timeout_secs: Option<f64>,
}

/// Checks prov's own keys (`parallelism`, `timeout_secs`) against [`OWN_SCHEMA`], every problem
/// at once, each naming `providers.NAME.KEY`; the program's keys are not looked at. Without
/// either key nothing is evaluated.
fn own_settings(name: &str, settings: &Value) -> Result<OwnSettings, Vec<String>> {
    let own: serde_json::Map<String, Value> = ["parallelism", "timeout_secs"]
        .iter()
        .filter_map(|k| {
            let v = settings.get(*k).filter(|v| !v.is_null())?;
            Some(((*k).to_string(), v.clone()))
        })
        .collect();
    if own.is_empty() {
        return Ok(OwnSettings::default());
    }
    let section = format!("providers.{name}");
    let checked = check_settings(&OWN_SCHEMA, &Value::Object(own)).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.under(&section))
            .collect::<Vec<_>>()
    })?;
    serde_json::from_value(checked).map_err(|e| vec![format!("{section}: {e}")])
}

impl ExecProvider {
    /// Reads prov's own keys from the settings (`parallelism`, `timeout_secs`); the rest is the
    /// executable's business.
    pub fn new(spec: Arc<ExecSpec>, ctx: &ExtContext) -> ExtResult<ExecProvider> {
        let own = own_settings(&ctx.name, &ctx.settings).map_err(|errors| {
            ExtError::new(
                &ctx.name,
                "load",
                None,
                ErrorKind::Invalid,
                errors.join("; "),
            )
        })?;
        let parallelism = own.parallelism.map(|n| n as usize);
        let timeout = own
            .timeout_secs
            .map_or(spec.timeout, Duration::from_secs_f64);
        let dir = ctx
            .workspace_dir
            .canonicalize()
            .unwrap_or_else(|_| ctx.workspace_dir.clone());
        let mut secrets = vec![];
        collect_secrets(&ctx.settings, false, &mut secrets);
        Ok(ExecProvider {
            name: ctx.name.clone(),
            settings: ctx.settings.clone(),
            workspace: WorkspaceRef {
                dir: dir.display().to_string(),
                name: ctx.workspace_name.clone(),
            },
            timeout,
            parallelism,
            secrets,
            spec,
            info: tokio::sync::OnceCell::new(),
            checked: tokio::sync::OnceCell::new(),
        })
    }

    fn redact(&self, mut s: String) -> String {
        for secret in &self.secrets {
            if s.contains(secret.as_str()) {
                s = s.replace(secret.as_str(), "<redacted>");
            }
        }
        s
    }

    fn err(&self, op: &str, target: Option<&str>, kind: ErrorKind, msg: String) -> ExtError {
        ExtError::new(&self.name, op, target, kind, self.redact(msg))
    }

    fn program_name(&self) -> String {
        self.spec.program.command.display().to_string()
    }

    /// The settings checked against the extension's schema: every problem, each naming
    /// `providers.NAME.KEY`.
    async fn checked_settings(&self) -> Result<Value, Vec<String>> {
        let Some(schema) = self.spec.schema.clone() else {
            return Ok(self.settings.clone());
        };
        let settings = self.settings.clone();
        let section = format!("providers.{}", self.name);
        let r = tokio::task::spawn_blocking(move || check_settings(&schema, &settings))
            .await
            .map_err(|e| vec![format!("{section}: the settings check failed: {e}")])?;
        r.map_err(|problems| problems.iter().map(|p| p.under(&section)).collect())
    }

    /// Runs the executable for `op` and returns the raw `result`.
    async fn raw(&self, op: &str, target: Option<&str>, arguments: Value) -> ExtResult<Value> {
        let settings = self
            .checked
            .get_or_try_init(|| async {
                self.checked_settings()
                    .await
                    .map_err(|errs| self.err(op, target, ErrorKind::Invalid, errs.join("; ")))
            })
            .await?
            .clone();
        let req = Request {
            protocol: PROTOCOL,
            provider: self.name.clone(),
            operation: op.to_string(),
            workspace: self.workspace.clone(),
            settings,
            arguments,
        };
        let input = serde_json::to_vec(&req).expect("requests serialise");
        let out = match run::run(&self.spec.program, &input, self.timeout).await {
            Ok(o) => o,
            Err(run::RunError::Spawn { source: e, .. }) => {
                return Err(self.err(
                    op,
                    target,
                    ErrorKind::Failed,
                    format!("cannot run {}: {e}", self.program_name()),
                ))
            }
            Err(run::RunError::Io { source: e, .. }) => {
                return Err(self.err(
                    op,
                    target,
                    ErrorKind::Failed,
                    format!("waiting for {}: {e}", self.program_name()),
                ))
            }
            Err(run::RunError::Timeout { stderr, .. }) => {
                return Err(self.err(
                    op,
                    target,
                    ErrorKind::Timeout,
                    format!(
                    "{} gave no answer within {:?} (timeout_secs); its process group was killed{}",
                    self.program_name(),
                    self.timeout,
                    stderr_note(&stderr)
                ),
                ))
            }
        };
        self.answer(op, target, &out)
    }

    /// The executable's answer: its `result`, or its `error`, or why neither could be read.
    fn answer(&self, op: &str, target: Option<&str>, out: &run::Output) -> ExtResult<Value> {
        let status = run::describe(&out.status);
        let parsed: Result<Response, String> = serde_json::from_slice(&out.stdout)
            .map_err(|e| e.to_string())
            .and_then(|r: Response| match (&r.result, &r.error) {
                (Some(_), Some(_)) => Err("both \"result\" and \"error\" are set".into()),
                _ => Ok(r),
            });
        match (parsed, out.status.success()) {
            (Ok(Response { error: Some(e), .. }), ok) => {
                let extra = if ok {
                    String::new()
                } else {
                    format!(" ({status})")
                };
                Err(self.err(op, target, e.code, format!("{}{extra}", e.message)))
            }
            (Ok(r), true) => Ok(r.result.unwrap_or(Value::Null)),
            (_, false) => Err(self.err(
                op,
                target,
                ErrorKind::Failed,
                format!(
                    "{} failed with {status}{}",
                    self.program_name(),
                    stderr_note(&out.stderr)
                ),
            )),
            (Err(e), true) => {
                let text = String::from_utf8_lossy(&out.stdout);
                let shown: String = text.chars().take(200).collect();
                Err(self.err(
                    op,
                    target,
                    ErrorKind::Failed,
                    format!(
                        "malformed response from {} ({e}); stdout began with {shown:?}{}",
                        self.program_name(),
                        stderr_note(&out.stderr)
                    ),
                ))
            }
        }
    }

    /// The executable's `info`, asked once per provider instance.
    async fn declared(&self) -> ExtResult<&ProviderInfo> {
        self.info
            .get_or_try_init(|| async {
                let v = self.raw("info", None, json!({})).await?;
                self.decode::<ProviderInfo>("info", None, v)
            })
            .await
    }

    fn decode<T: DeserializeOwned>(
        &self,
        op: &str,
        target: Option<&str>,
        v: Value,
    ) -> ExtResult<T> {
        serde_json::from_value(v).map_err(|e| {
            self.err(
                op,
                target,
                ErrorKind::Failed,
                format!(
                    "malformed result from {} ({e}); see docs/exec-protocol.md for the shape of {op}",
                    self.program_name()
                ),
            )
        })
    }

    /// An operation the executable declared in `info`: runs it and decodes the result.
    async fn call<T: DeserializeOwned>(
        &self,
        op: &str,
        target: Option<&str>,
        arguments: Value,
    ) -> ExtResult<T> {
        let info = self.declared().await?;
        if !info.supported_operations.iter().any(|o| o == op) {
            return Err(self.err(
                op,
                target,
                ErrorKind::Unsupported,
                format!(
                    "not supported by this provider (its info lists: {})",
                    info.supported_operations.join(", ")
                ),
            ));
        }
        let v = self.raw(op, target, arguments).await?;
        self.decode(op, target, v)
    }
}

/// Accepts `null` (and anything else) for operations without a result.
#[derive(Deserialize)]
struct Nothing(#[allow(dead_code)] Value);

#[async_trait]
impl Provider for ExecProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn replace_on_change(&self) -> &[&str] {
        self.spec.replace_on_change.unwrap_or(&["zone", "os"])
    }
    fn parallelism(&self) -> Option<usize> {
        self.parallelism
    }

    async fn info(&self) -> ExtResult<ProviderInfo> {
        self.declared().await.cloned()
    }

    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation> {
        if let Err(errors) = self.checked_settings().await {
            return Ok(Validation {
                errors,
                ..Validation::default()
            });
        }
        let info = self.declared().await?;
        if !info
            .supported_operations
            .iter()
            .any(|o| o == "validate-config")
        {
            return Ok(Validation::default());
        }
        self.call("validate-config", None, json!({ "settings": settings }))
            .await
    }

    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        self.call("test-connection", None, json!({})).await
    }

    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        self.call(
            "create-server",
            Some(&spec.hostname),
            json!({ "spec": spec, "owner": owner }),
        )
        .await
    }

    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        self.call::<Nothing>("delete-server", Some(id), json!({ "id": id }))
            .await
            .map(|_| ())
    }

    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        self.call("list-servers", None, json!({})).await
    }

    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        self.call("get-server-info", Some(id), json!({ "id": id }))
            .await
    }

    async fn start_server(&self, id: &str) -> ExtResult<()> {
        self.call::<Nothing>("start-server", Some(id), json!({ "id": id }))
            .await
            .map(|_| ())
    }

    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        self.call::<Nothing>("stop-server", Some(id), json!({ "id": id }))
            .await
            .map(|_| ())
    }

    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        self.call::<Nothing>("reboot-server", Some(id), json!({ "id": id }))
            .await
            .map(|_| ())
    }

    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        self.call(
            "update-server",
            Some(id),
            json!({ "id": id, "update": update }),
        )
        .await
    }

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        self.call("get-pricing", None, json!({})).await
    }

    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        self.call("get-plans", None, json!({})).await
    }

    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        self.call("get-zones", None, json!({})).await
    }

    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        self.call("get-ssh-access", Some(id), json!({ "id": id }))
            .await
    }

    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        self.call::<Nothing>(
            "configure-firewall",
            Some(id),
            json!({ "id": id, "rules": rules }),
        )
        .await
        .map(|_| ())
    }
}

/// The last lines of a program's stderr for an error message, or nothing when it wrote none.
fn stderr_note(bytes: &[u8]) -> String {
    let t = run::tail(bytes, run::STDERR_LINES);
    if t.is_empty() {
        String::new()
    } else {
        format!("; stderr: {t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_found_under_secret_keys_only() {
        let mut out = vec![];
        collect_secrets(
            &json!({"auth": {"method": "basic", "password": "hunter22"},
                    "api_token": "tok-123", "region": "eu", "nested": [{"client_secret": "abcd"}]}),
            false,
            &mut out,
        );
        out.sort();
        assert_eq!(out, ["abcd", "hunter22", "tok-123"]);
    }

    #[test]
    fn interned_lists_are_shared() {
        let a = intern(&["zone".into(), "os".into()]);
        let b = intern(&["zone".into(), "os".into()]);
        assert_eq!(a, ["zone", "os"]);
        assert!(std::ptr::eq(a, b));
    }

    #[test]
    fn responses_parse_and_error_codes_are_kinds() {
        let r: Response =
            serde_json::from_str(r#"{"error": {"code": "not_found", "message": "gone"}}"#).unwrap();
        assert_eq!(r.error.unwrap().code, ErrorKind::NotFound);
        assert!(serde_json::from_str::<Response>(r#"{"resutl": 1}"#).is_err());
    }
}
