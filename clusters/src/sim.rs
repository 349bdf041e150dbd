//! The `sim` cluster: records clusters and their components in the simulated world, for tests,
//! benchmarks and drift demos. Nothing runs anywhere.
//!
//! # Files (part of the sim world, `<workspace>/.prov/sim/`, see prov-sim's `layout`)
//!
//! ```text
//! clusters/<name>.json                        one ClusterRecord
//! clusters/<name>/components/<comp>.json      one ComponentRecord
//! locks/NN.lock                               flock stripes; a cluster and all its components
//!                                             share the key `clusters/<name>`
//! ```
//!
//! `create` checks through each server's provider that the cluster's servers exist (`NotFound`
//! otherwise); `deploy_component` needs the cluster and every component named in the component's
//! `dependencies` to be deployed already (`Failed` otherwise), like a real rollout would.
//! A component's kind is its config's `type` (default `application`), its version `version`
//! ("latest" when empty), its replicas `resources.replicas` (default 1).
//!
//! # Environment (the cluster factory gets no settings)
//! - `PROV_SIM_LATENCY_MS`: every call sleeps this long first (default 0).
//! - `PROV_SIM_FAIL_CLUSTERS`: comma-separated `CLUSTER` (its create and delete fail) or
//!   `CLUSTER/COMPONENT` (that component's deploy, scale, upgrade, restart and removal fail).
//!
//! Both are read once, when the cluster implementation is built.

use async_trait::async_trait;
use prov_engine::fsutil;
use prov_engine::registry::{ClusterFactory, ExtContext};
use prov_engine::traits::{
    Cluster, ClusterRequest, ClusterResult, ClusterStatus, ComponentRequest, ComponentStatus,
    ErrorKind, ExtError, ExtResult,
};
use prov_sim::{Layout, SimEnv, StripeLock};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use prov_sim::env::{ENV_FAIL_CLUSTERS, ENV_LATENCY_MS};

/// A server a cluster runs on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterServer {
    pub address: String,
    pub hostname: String,
    pub server_id: String,
}

/// A cluster, as stored in `clusters/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub servers: Vec<ClusterServer>,
    pub created_at: String,
    #[serde(default)]
    pub updated_at: Option<String>,
}

/// A component, as stored in `clusters/<name>/components/<component>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentRecord {
    pub name: String,
    pub kind: String,
    pub version: String,
    /// "running" or "stopped".
    pub status: String,
    pub replicas: u32,
    #[serde(default)]
    pub config: Value,
    pub deployed_at: String,
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl ComponentRecord {
    fn status(&self) -> ComponentStatus {
        ComponentStatus {
            name: self.name.clone(),
            kind: self.kind.clone(),
            version: self.version.clone(),
            status: self.status.clone(),
            replicas: self.replicas,
        }
    }
}

/// The sim cluster implementation (one instance serves every cluster).
pub struct SimCluster {
    name: String,
    world: Layout,
    latency: Duration,
    /// Entries of `PROV_SIM_FAIL_CLUSTERS`.
    fail: BTreeSet<String>,
}

/// The factory registered under `sim`.
pub fn factory() -> ClusterFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(SimCluster::new(ctx)?) as Arc<dyn Cluster>))
}

type OpResult<T> = Result<T, (ErrorKind, String)>;

fn io_fail(path: &Path) -> impl FnOnce(std::io::Error) -> (ErrorKind, String) + '_ {
    move |e| (ErrorKind::Failed, format!("{}: {e}", path.display()))
}

/// The files of one cluster.
struct ClusterPaths {
    name: String,
    file: PathBuf,
    components: PathBuf,
    /// `clusters/<name>`: holds `components/`.
    dir: PathBuf,
    world: Layout,
}

impl ClusterPaths {
    fn lock(&self) -> OpResult<StripeLock> {
        let locks = self.world.locks_dir();
        self.world
            .lock(&Layout::cluster_key(&self.name))
            .map_err(io_fail(&locks))
    }
    fn read(&self) -> OpResult<Option<ClusterRecord>> {
        fsutil::read_json(&self.file).map_err(io_fail(&self.file))
    }
    fn existing(&self) -> OpResult<ClusterRecord> {
        self.read()?.ok_or_else(|| {
            (
                ErrorKind::NotFound,
                format!("cluster {} does not exist", self.name),
            )
        })
    }
    fn write(&self, rec: &ClusterRecord) -> OpResult<()> {
        let parent = self.file.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io_fail(parent))?;
        fsutil::write_json_atomic(&self.file, rec).map_err(io_fail(&self.file))
    }
    fn component_file(&self, component: &str) -> OpResult<PathBuf> {
        self.world
            .component_file(&self.name, component)
            .map_err(|msg| (ErrorKind::Invalid, msg))
    }
    fn read_component(&self, component: &str) -> OpResult<Option<ComponentRecord>> {
        let f = self.component_file(component)?;
        fsutil::read_json(&f).map_err(io_fail(&f))
    }
    fn write_component(&self, rec: &ComponentRecord) -> OpResult<()> {
        std::fs::create_dir_all(&self.components).map_err(io_fail(&self.components))?;
        let f = self.component_file(&rec.name)?;
        fsutil::write_json_atomic(&f, rec).map_err(io_fail(&f))
    }
    fn list_components(&self) -> OpResult<Vec<ComponentRecord>> {
        let entries = match std::fs::read_dir(&self.components) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_fail(&self.components)(e)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_fail(&self.components))?;
            if !fsutil::is_data_file(&entry.file_name().to_string_lossy()) {
                continue;
            }
            let path = entry.path();
            if let Some(rec) =
                fsutil::read_json::<ComponentRecord>(&path).map_err(io_fail(&path))?
            {
                out.push(rec);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl SimCluster {
    /// Builds the implementation for `ctx.workspace_dir`, reading its environment variables.
    pub fn new(ctx: &ExtContext) -> ExtResult<SimCluster> {
        let env = SimEnv::from_process();
        let latency = env
            .latency()
            .map_err(|msg| ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, msg))?
            .unwrap_or_default();
        let fail = env.fail_clusters();
        Ok(SimCluster {
            name: ctx.name.clone(),
            world: Layout::of(&ctx.workspace_dir),
            latency,
            fail,
        })
    }

    fn err(&self, op: &str, target: &str, (kind, msg): (ErrorKind, String)) -> ExtError {
        ExtError::new(&self.name, op, Some(target), kind, msg)
    }

    async fn pause(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }

    fn inject(&self, op: &str, target: &str, key: &str) -> ExtResult<()> {
        if self.fail.contains(key) {
            return Err(self.err(
                op,
                target,
                (
                    ErrorKind::Failed,
                    format!("injected failure for {key} ({ENV_FAIL_CLUSTERS})"),
                ),
            ));
        }
        Ok(())
    }

    fn paths(&self, cluster: &str) -> OpResult<ClusterPaths> {
        let file = self
            .world
            .cluster_file(cluster)
            .map_err(|msg| (ErrorKind::Invalid, msg))?;
        Ok(ClusterPaths {
            name: cluster.to_string(),
            file,
            components: self.world.components_dir(cluster),
            dir: self.world.cluster_dir(cluster),
            world: self.world.clone(),
        })
    }

    /// Runs blocking file work for one cluster off the async runtime.
    async fn blocking<T, F>(&self, op: &str, target: &str, cluster: &str, f: F) -> ExtResult<T>
    where
        T: Send + 'static,
        F: FnOnce(ClusterPaths) -> OpResult<T> + Send + 'static,
    {
        let paths = self.paths(cluster).map_err(|e| self.err(op, target, e))?;
        tokio::task::spawn_blocking(move || f(paths))
            .await
            .map_err(|e| {
                self.err(
                    op,
                    target,
                    (ErrorKind::Failed, format!("sim task failed: {e}")),
                )
            })?
            .map_err(|e| self.err(op, target, e))
    }

    /// Changes one existing component under the cluster's lock.
    async fn modify_component<F>(
        &self,
        op: &str,
        req: &ComponentRequest,
        change: F,
    ) -> ExtResult<ComponentStatus>
    where
        F: FnOnce(&mut ComponentRecord) + Send + 'static,
    {
        self.pause().await;
        self.inject(
            op,
            &req.address,
            &format!("{}/{}", req.cluster.name, req.name),
        )?;
        let component = req.name.clone();
        self.blocking(op, &req.address, &req.cluster.name, move |p| {
            let _lock = p.lock()?;
            let mut rec = p.read_component(&component)?.ok_or_else(|| {
                (
                    ErrorKind::NotFound,
                    format!(
                        "component {component} of cluster {} is not deployed",
                        p.name
                    ),
                )
            })?;
            change(&mut rec);
            rec.updated_at = Some(fsutil::now_rfc3339());
            p.write_component(&rec)?;
            Ok(rec.status())
        })
        .await
    }
}

/// The cluster's overall status: running when every component runs.
fn overall(components: &[ComponentRecord]) -> String {
    if components.iter().all(|c| c.status == "running") {
        "running".into()
    } else {
        "degraded".into()
    }
}

fn string_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[async_trait]
impl Cluster for SimCluster {
    fn name(&self) -> &str {
        &self.name
    }

    fn output_names(&self) -> Option<Vec<String>> {
        Some(vec!["name".into(), "server_ids".into()])
    }

    async fn create(&self, req: &ClusterRequest) -> ExtResult<ClusterResult> {
        const OP: &str = "create";
        self.pause().await;
        let mut servers = Vec::new();
        for s in &req.servers {
            let info = s
                .provider
                .get_server_info(&s.provider_id)
                .await
                .map_err(|e| self.err(OP, &req.address, (e.kind, e.message)))?;
            if info.is_none() {
                return Err(self.err(
                    OP,
                    &req.address,
                    (
                        ErrorKind::NotFound,
                        format!("server {} ({}) does not exist", s.hostname, s.provider_id),
                    ),
                ));
            }
            servers.push(ClusterServer {
                address: s.address.clone(),
                hostname: s.hostname.clone(),
                server_id: s.provider_id.clone(),
            });
        }
        self.inject(OP, &req.address, &req.name)?;
        let config = req.config.clone();
        self.blocking(OP, &req.address, &req.name, move |p| {
            let _lock = p.lock()?;
            // Creating again (an interrupted create) keeps the original creation time.
            let created_at = p
                .read()?
                .map(|r| r.created_at)
                .unwrap_or_else(fsutil::now_rfc3339);
            let rec = ClusterRecord {
                name: p.name.clone(),
                config,
                servers,
                created_at,
                updated_at: Some(fsutil::now_rfc3339()),
            };
            p.write(&rec)?;
            Ok(ClusterResult {
                status: "running".into(),
                endpoints: rec.servers.iter().map(|s| s.hostname.clone()).collect(),
                outputs: json!({
                    "name": rec.name,
                    "server_ids": rec.servers.iter().map(|s| &s.server_id).collect::<Vec<_>>(),
                }),
            })
        })
        .await
    }

    async fn delete(&self, req: &ClusterRequest) -> ExtResult<()> {
        const OP: &str = "delete";
        self.pause().await;
        self.inject(OP, &req.address, &req.name)?;
        self.blocking(OP, &req.address, &req.name, |p| {
            let _lock = p.lock()?;
            p.existing()?;
            // Components first, the record last: an interrupted delete is found and redone.
            fsutil::remove_dir_all(&p.dir).map_err(io_fail(&p.dir))?;
            fsutil::remove_file(&p.file).map_err(io_fail(&p.file))?;
            Ok(())
        })
        .await
    }

    async fn status(&self, req: &ClusterRequest) -> ExtResult<ClusterStatus> {
        self.pause().await;
        self.blocking("status", &req.address, &req.name, |p| {
            p.existing()?;
            let components = p.list_components()?;
            Ok(ClusterStatus {
                status: overall(&components),
                components: components.iter().map(ComponentRecord::status).collect(),
            })
        })
        .await
    }

    async fn scale(&self, req: &ComponentRequest, replicas: u32) -> ExtResult<ComponentStatus> {
        self.modify_component("scale", req, move |c| c.replicas = replicas)
            .await
    }

    async fn upgrade(&self, req: &ComponentRequest, version: &str) -> ExtResult<ComponentStatus> {
        let version = version.to_string();
        self.modify_component("upgrade", req, move |c| {
            c.version = version;
            c.status = "running".into();
        })
        .await
    }

    async fn list_components(&self, req: &ClusterRequest) -> ExtResult<Vec<ComponentStatus>> {
        self.pause().await;
        self.blocking("list-components", &req.address, &req.name, |p| {
            p.existing()?;
            Ok(p.list_components()?
                .iter()
                .map(ComponentRecord::status)
                .collect())
        })
        .await
    }

    async fn component_status(&self, req: &ComponentRequest) -> ExtResult<Option<ComponentStatus>> {
        self.pause().await;
        let component = req.name.clone();
        self.blocking(
            "component-status",
            &req.address,
            &req.cluster.name,
            move |p| Ok(p.read_component(&component)?.map(|c| c.status())),
        )
        .await
    }

    async fn restart_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        self.modify_component("restart-component", req, |c| {
            c.status = "running".into();
            c.restarts += 1;
        })
        .await
        .map(|_| ())
    }

    async fn deploy_component(&self, req: &ComponentRequest) -> ExtResult<ComponentStatus> {
        const OP: &str = "deploy-component";
        self.pause().await;
        self.inject(
            OP,
            &req.address,
            &format!("{}/{}", req.cluster.name, req.name),
        )?;
        let cfg = &req.config;
        let replicas = cfg
            .get("resources")
            .and_then(|r| r.get("replicas"))
            .or_else(|| cfg.get("replicas"))
            .and_then(Value::as_f64)
            .map(|n| n.clamp(0.0, f64::from(u32::MAX)) as u32)
            .unwrap_or(1);
        let dependencies: Vec<String> = cfg
            .get("dependencies")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let rec = ComponentRecord {
            name: req.name.clone(),
            kind: string_at(cfg, "type").unwrap_or("application").to_string(),
            version: string_at(cfg, "version").unwrap_or("latest").to_string(),
            status: "running".into(),
            replicas,
            config: cfg.clone(),
            deployed_at: fsutil::now_rfc3339(),
            restarts: 0,
            updated_at: None,
        };
        self.blocking(OP, &req.address, &req.cluster.name, move |p| {
            let _lock = p.lock()?;
            p.existing()?;
            for dep in &dependencies {
                if p.read_component(dep)?.is_none() {
                    return Err((
                        ErrorKind::Failed,
                        format!(
                            "component {} depends on {dep}, which is not deployed",
                            rec.name
                        ),
                    ));
                }
            }
            p.write_component(&rec)?;
            Ok(rec.status())
        })
        .await
    }

    async fn remove_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        const OP: &str = "remove-component";
        self.pause().await;
        self.inject(
            OP,
            &req.address,
            &format!("{}/{}", req.cluster.name, req.name),
        )?;
        let component = req.name.clone();
        self.blocking(OP, &req.address, &req.cluster.name, move |p| {
            let _lock = p.lock()?;
            let f = p.component_file(&component)?;
            if fsutil::remove_file(&f).map_err(io_fail(&f))? {
                Ok(())
            } else {
                Err((
                    ErrorKind::NotFound,
                    format!(
                        "component {component} of cluster {} is not deployed",
                        p.name
                    ),
                ))
            }
        })
        .await
    }
}
