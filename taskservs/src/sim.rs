//! The `sim` taskserv: records taskservs "installed" on servers of the simulated world, for tests,
//! benchmarks and drift demos. Nothing runs anywhere.
//!
//! # Files (part of the sim world, `<workspace>/.prov/sim/`, see prov-sim's `layout`)
//!
//! ```text
//! taskservs/<server_id>/<name>.json   one InstalledTaskserv (the provider's out-of-band edits
//!                                     change its `status`, `version` and `updated_at`)
//! locks/NN.lock                       flock stripes; a taskserv's key is
//!                                     `taskservs/<server_id>/<name>`
//! ```
//!
//! The server's existence is learnt from its provider (`get_server_info`): every operation but
//! `get_available_versions` fails with `NotFound` when the server is gone, and the changing ones
//! fail when it is not running.
//!
//! # Versions
//! A taskserv's available versions are `settings.available_versions` (strings) or, by default,
//! [`DEFAULT_VERSIONS`]; "latest" (or no version) means the highest of them. Without
//! `available_versions` any explicit version installs.
//!
//! # Environment (the taskserv factory gets no settings; see prov-sim's `env`)
//! - `PROV_SIM_LATENCY_MS`: every call sleeps this long first (default 0).
//! - `PROV_SIM_FAIL_TASKSERVS`: comma-separated `SERVER/NAME` (SERVER a hostname or id) whose
//!   install, configure, upgrade, restart and uninstall fail with `Failed`.
//!
//! Both are read once, when the taskserv is built.

use async_trait::async_trait;
use prov_engine::fsutil;
use prov_engine::registry::{ExtContext, TaskservFactory};
use prov_engine::traits::{
    ErrorKind, ExtError, ExtResult, ServerInfo, ServerStatus, TaskServ, TaskservRequest,
    TaskservResult, TaskservStatus, UpdateCheck, Validation,
};
use prov_sim::{Layout, SimEnv, StripeLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use prov_sim::env::{ENV_FAIL_TASKSERVS, ENV_LATENCY_MS};

/// The versions every taskserv offers unless its settings list `available_versions`.
pub const DEFAULT_VERSIONS: &[&str] = &["1.0.0", "1.1.0", "2.0.0"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Running,
    Stopped,
}

/// One installed taskserv, as stored in `taskservs/<server_id>/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstalledTaskserv {
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub settings: Value,
    pub status: RunState,
    pub installed_at: String,
    /// How many times `configure` ran.
    #[serde(default)]
    pub configured: u64,
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub server_id: String,
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// The sim taskserv (one instance serves every taskserv name).
pub struct SimTaskServ {
    name: String,
    world: Layout,
    latency: Duration,
    /// `SERVER/NAME` entries of `PROV_SIM_FAIL_TASKSERVS`.
    fail: BTreeSet<String>,
}

/// The factory registered under `sim`.
pub fn factory() -> TaskservFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(SimTaskServ::new(ctx)?) as Arc<dyn TaskServ>))
}

/// An operation's failure before it is dressed as an `ExtError`.
type OpResult<T> = Result<T, (ErrorKind, String)>;

fn io_fail(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> (ErrorKind, String) + '_ {
    move |e| (ErrorKind::Failed, format!("{}: {e}", path.display()))
}

impl SimTaskServ {
    /// Builds the taskserv for `ctx.workspace_dir`, reading its environment variables.
    pub fn new(ctx: &ExtContext) -> ExtResult<SimTaskServ> {
        let env = SimEnv::from_process();
        let latency = env
            .latency()
            .map_err(|msg| ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, msg))?
            .unwrap_or_default();
        let fail = env.fail_taskservs();
        Ok(SimTaskServ {
            name: ctx.name.clone(),
            world: Layout::of(&ctx.workspace_dir),
            latency,
            fail,
        })
    }

    fn err(&self, op: &str, req: &TaskservRequest, (kind, msg): (ErrorKind, String)) -> ExtError {
        ExtError::new(&self.name, op, Some(&req.address), kind, msg)
    }

    async fn pause(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    /// The server the taskserv is on, from its provider; `NotFound` when it is gone.
    async fn server(&self, op: &str, req: &TaskservRequest) -> ExtResult<ServerInfo> {
        let s = &req.server;
        let info = s
            .provider
            .get_server_info(&s.provider_id)
            .await
            .map_err(|e| {
                self.err(
                    op,
                    req,
                    (
                        e.kind,
                        format!(
                            "cannot read server {} ({}): {}",
                            s.hostname, s.provider_id, e.message
                        ),
                    ),
                )
            })?;
        info.ok_or_else(|| {
            self.err(
                op,
                req,
                (
                    ErrorKind::NotFound,
                    format!("server {} ({}) does not exist", s.hostname, s.provider_id),
                ),
            )
        })
    }

    /// The server, which must be running for a change.
    async fn running_server(&self, op: &str, req: &TaskservRequest) -> ExtResult<ServerInfo> {
        let info = self.server(op, req).await?;
        if info.status != ServerStatus::Running {
            let status = serde_json::to_value(info.status).unwrap_or(Value::Null);
            return Err(self.err(
                op,
                req,
                (
                    ErrorKind::Failed,
                    format!(
                        "server {} is not running (status {status})",
                        req.server.hostname
                    ),
                ),
            ));
        }
        Ok(info)
    }

    /// Fails an operation named by `PROV_SIM_FAIL_TASKSERVS`.
    fn inject(&self, op: &str, req: &TaskservRequest) -> ExtResult<()> {
        let by_host = format!("{}/{}", req.server.hostname, req.name);
        let by_id = format!("{}/{}", req.server.provider_id, req.name);
        if self.fail.contains(&by_host) || self.fail.contains(&by_id) {
            return Err(self.err(
                op,
                req,
                (
                    ErrorKind::Failed,
                    format!("injected failure for taskserv {by_host} ({ENV_FAIL_TASKSERVS})"),
                ),
            ));
        }
        Ok(())
    }

    fn paths(&self, req: &TaskservRequest) -> OpResult<TaskservPaths> {
        let (server_id, name) = (&req.server.provider_id, &req.name);
        let file = self
            .world
            .taskserv_file(server_id, name)
            .map_err(|msg| (ErrorKind::Invalid, msg))?;
        Ok(TaskservPaths {
            file,
            dir: self.world.taskservs_dir(server_id),
            world: self.world.clone(),
            key: Layout::taskserv_key(server_id, name),
        })
    }

    /// Runs blocking file work off the async runtime.
    async fn blocking<T, F>(&self, op: &str, req: &TaskservRequest, f: F) -> ExtResult<T>
    where
        T: Send + 'static,
        F: FnOnce(TaskservPaths) -> OpResult<T> + Send + 'static,
    {
        let paths = self.paths(req).map_err(|e| self.err(op, req, e))?;
        tokio::task::spawn_blocking(move || f(paths))
            .await
            .map_err(|e| {
                self.err(
                    op,
                    req,
                    (ErrorKind::Failed, format!("sim task failed: {e}")),
                )
            })?
            .map_err(|e| self.err(op, req, e))
    }

    /// Reads, changes and writes the installed record under its lock; `NotFound` when missing.
    async fn modify<F>(
        &self,
        op: &str,
        req: &TaskservRequest,
        change: F,
    ) -> ExtResult<InstalledTaskserv>
    where
        F: FnOnce(&mut InstalledTaskserv) + Send + 'static,
    {
        let missing = not_installed(req);
        self.blocking(op, req, move |p| {
            let _lock = p.lock()?;
            let mut rec = p.read()?.ok_or(missing)?;
            change(&mut rec);
            rec.updated_at = Some(fsutil::now_rfc3339());
            p.write(&rec)?;
            Ok(rec)
        })
        .await
    }

    async fn read(&self, op: &str, req: &TaskservRequest) -> ExtResult<Option<InstalledTaskserv>> {
        self.blocking(op, req, |p| p.read()).await
    }
}

fn not_installed(req: &TaskservRequest) -> (ErrorKind, String) {
    (
        ErrorKind::NotFound,
        format!(
            "taskserv {} is not installed on {}",
            req.name, req.server.hostname
        ),
    )
}

struct TaskservPaths {
    dir: PathBuf,
    file: PathBuf,
    world: Layout,
    key: String,
}

impl TaskservPaths {
    fn lock(&self) -> OpResult<StripeLock> {
        let locks = self.world.locks_dir();
        self.world.lock(&self.key).map_err(io_fail(&locks))
    }
    fn read(&self) -> OpResult<Option<InstalledTaskserv>> {
        fsutil::read_json(&self.file).map_err(io_fail(&self.file))
    }
    fn write(&self, rec: &InstalledTaskserv) -> OpResult<()> {
        std::fs::create_dir_all(&self.dir).map_err(io_fail(&self.dir))?;
        fsutil::write_json_atomic(&self.file, rec).map_err(io_fail(&self.file))
    }
}

/// Compares versions part by part, numerically where both parts are numbers ("1.10" > "1.9").
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    let split = |s: &str| -> Vec<String> {
        s.trim_start_matches('v')
            .split(['.', '-', '+'])
            .map(str::to_string)
            .collect()
    };
    let (pa, pb) = (split(a), split(b));
    for (x, y) in pa.iter().zip(&pb) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(nx), Ok(ny)) => nx.cmp(&ny),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    pa.len().cmp(&pb.len())
}

/// The versions `req` may install, ascending.
fn available_versions(req: &TaskservRequest) -> OpResult<Vec<String>> {
    let mut versions: Vec<String> = match req.settings.get("available_versions") {
        None | Some(Value::Null) => DEFAULT_VERSIONS.iter().map(|s| s.to_string()).collect(),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        }
        Some(other) => {
            return Err((
                ErrorKind::Invalid,
                format!(
                    "settings.available_versions must be a non-empty array of strings, got {other}"
                ),
            ))
        }
    };
    versions.sort_by(|a, b| version_cmp(a, b));
    versions.dedup();
    Ok(versions)
}

fn has_release_list(req: &TaskservRequest) -> bool {
    !matches!(
        req.settings.get("available_versions"),
        None | Some(Value::Null)
    )
}

/// The concrete version `wanted` means ("latest" or none: the highest available).
fn resolve_version(req: &TaskservRequest, wanted: Option<&str>) -> OpResult<String> {
    let versions = available_versions(req)?;
    match wanted {
        None | Some("latest") => Ok(versions.last().cloned().unwrap_or_default()),
        Some(v) if versions.iter().any(|a| a == v) => Ok(v.to_string()),
        // Without a declared release list any explicit version installs: the simulation has no
        // real catalogue to hold it against.
        Some(v) if !has_release_list(req) => Ok(v.to_string()),
        Some(v) => Err((
            ErrorKind::Invalid,
            format!(
                "version {v:?} of {} is not available (available: {})",
                req.name,
                versions.join(", ")
            ),
        )),
    }
}

fn result(rec: &InstalledTaskserv) -> TaskservResult {
    TaskservResult {
        version: Some(rec.version.clone()),
        status: "running".to_string(),
        outputs: json!({ "server_id": rec.server_id, "hostname": rec.hostname }),
    }
}

#[async_trait]
impl TaskServ for SimTaskServ {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_names(&self) -> Option<Vec<String>> {
        Some(vec!["server_id".into(), "hostname".into()])
    }

    async fn validate(&self, req: &TaskservRequest) -> ExtResult<Validation> {
        // A local check (no simulated API call): no latency, since every plan runs it.
        let mut v = Validation::default();
        if !(req.settings.is_object() || req.settings.is_null()) {
            v.errors
                .push(format!("settings must be a record, got {}", req.settings));
        } else if let Err((_, msg)) = resolve_version(req, req.version.as_deref()) {
            v.errors.push(msg);
        }
        // Before its server exists (a plan's settings check) there is no id to check yet.
        if !req.server.provider_id.is_empty() {
            if let Err((_, msg)) = self.paths(req) {
                v.errors.push(msg);
            }
        }
        Ok(v)
    }

    async fn install(&self, req: &TaskservRequest) -> ExtResult<TaskservResult> {
        const OP: &str = "install";
        self.pause().await;
        let server = self.running_server(OP, req).await?;
        let version =
            resolve_version(req, req.version.as_deref()).map_err(|e| self.err(OP, req, e))?;
        self.inject(OP, req)?;
        let rec = InstalledTaskserv {
            name: req.name.clone(),
            version,
            settings: req.settings.clone(),
            status: RunState::Running,
            installed_at: fsutil::now_rfc3339(),
            configured: 0,
            restarts: 0,
            server_id: server.id,
            hostname: server.hostname,
            updated_at: None,
        };
        // Installing again overwrites: an interrupted install is simply redone.
        self.blocking(OP, req, move |p| {
            let _lock = p.lock()?;
            p.write(&rec)?;
            Ok(result(&rec))
        })
        .await
    }

    async fn uninstall(&self, req: &TaskservRequest) -> ExtResult<()> {
        const OP: &str = "uninstall";
        self.pause().await;
        self.server(OP, req).await?;
        self.inject(OP, req)?;
        let missing = not_installed(req);
        self.blocking(OP, req, move |p| {
            let _lock = p.lock()?;
            if fsutil::remove_file(&p.file).map_err(io_fail(&p.file))? {
                Ok(())
            } else {
                Err(missing)
            }
        })
        .await
    }

    async fn configure(&self, req: &TaskservRequest) -> ExtResult<()> {
        const OP: &str = "configure";
        self.pause().await;
        self.running_server(OP, req).await?;
        self.inject(OP, req)?;
        let settings = req.settings.clone();
        self.modify(OP, req, move |rec| {
            rec.settings = settings;
            rec.configured += 1;
        })
        .await
        .map(|_| ())
    }

    async fn status(&self, req: &TaskservRequest) -> ExtResult<TaskservStatus> {
        const OP: &str = "status";
        self.pause().await;
        let server = self.server(OP, req).await?;
        let rec = self.read(OP, req).await?;
        let server_running = server.status == ServerStatus::Running;
        Ok(match rec {
            None => TaskservStatus {
                installed: false,
                running: false,
                version: None,
                healthy: None,
                detail: json!({ "server_status": server.status }),
            },
            Some(rec) => {
                let running = server_running && rec.status == RunState::Running;
                TaskservStatus {
                    installed: true,
                    running,
                    version: Some(rec.version.clone()),
                    healthy: Some(running),
                    detail: json!({
                        "status": rec.status,
                        "server_status": server.status,
                        "configured": rec.configured,
                        "restarts": rec.restarts,
                        "installed_at": rec.installed_at,
                        "settings": rec.settings,
                    }),
                }
            }
        })
    }

    async fn restart(&self, req: &TaskservRequest) -> ExtResult<()> {
        const OP: &str = "restart";
        self.pause().await;
        self.running_server(OP, req).await?;
        self.inject(OP, req)?;
        self.modify(OP, req, |rec| {
            rec.status = RunState::Running;
            rec.restarts += 1;
        })
        .await
        .map(|_| ())
    }

    async fn upgrade(&self, req: &TaskservRequest, version: &str) -> ExtResult<TaskservResult> {
        const OP: &str = "upgrade";
        self.pause().await;
        self.running_server(OP, req).await?;
        let version = resolve_version(req, Some(version)).map_err(|e| self.err(OP, req, e))?;
        self.inject(OP, req)?;
        self.modify(OP, req, move |rec| {
            rec.version = version;
            rec.status = RunState::Running;
        })
        .await
        .map(|rec| result(&rec))
    }

    async fn get_current_version(&self, req: &TaskservRequest) -> ExtResult<Option<String>> {
        const OP: &str = "get-current-version";
        self.pause().await;
        self.server(OP, req).await?;
        Ok(self.read(OP, req).await?.map(|r| r.version))
    }

    async fn get_available_versions(&self, req: &TaskservRequest) -> ExtResult<Vec<String>> {
        self.pause().await;
        available_versions(req).map_err(|e| self.err("get-available-versions", req, e))
    }

    async fn check_updates(&self, req: &TaskservRequest) -> ExtResult<UpdateCheck> {
        const OP: &str = "check-updates";
        self.pause().await;
        self.server(OP, req).await?;
        let latest = available_versions(req)
            .map_err(|e| self.err(OP, req, e))?
            .pop();
        let current = self.read(OP, req).await?.map(|r| r.version);
        let update_available = match (&current, &latest) {
            (Some(c), Some(l)) => version_cmp(c, l) == Ordering::Less,
            _ => false,
        };
        Ok(UpdateCheck {
            current,
            latest,
            update_available,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(version_cmp("1.10.0", "1.9.0"), Ordering::Greater);
        assert_eq!(version_cmp("v2.0", "2.0"), Ordering::Equal);
        assert_eq!(version_cmp("1.0", "1.0.1"), Ordering::Less);
    }
}
