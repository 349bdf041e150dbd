//! Extension-directory clusters: a directory with `manifest.toml`, `schemas/cluster.ncl` and one
//! `components/NAME/` directory (templates and scripts) per application or infrastructure
//! component becomes a `Cluster`. Components of type `taskserv` are the registered taskservs of
//! that name (catalog or workspace), installed through the taskserv machinery; the others are
//! run by the same machinery over the component's own directory, with `deploy.sh`/`remove.sh`
//! in place of install/uninstall. A component runs on the first `resources.replicas` servers of
//! the cluster (one instance per server). See docs/clusters.md for the contract.

use async_trait::async_trait;
use prov_engine::extension::Extension;
use prov_engine::registry::{Bound, ClusterFactory, ExtContext, Registry};
use prov_engine::traits::{
    Cluster, ClusterRequest, ClusterResult, ClusterStatus, ComponentRequest, ComponentStatus,
    ErrorKind, ExtError, ExtResult, ServerTarget, TaskServ, TaskservRequest, TaskservStatus,
    Validation,
};
use prov_taskservs::ext::{ExtTaskserv, Spec as ComponentSpec, COMPONENT_SCRIPTS};
use prov_taskservs::transport::SshOptions;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `[cluster]` section of `manifest.toml`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Per application/infrastructure component: what `[taskserv]` says for a taskserv
    /// (timeout, rendered files, health check, outputs). Its directory is `components/NAME/`.
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
}

/// Reads the `[cluster]` section (an empty one when absent).
pub fn spec_of(ext: &Extension) -> Result<Spec, prov_engine::extension::ExtensionError> {
    Ok(ext.section::<Spec>("cluster")?.unwrap_or_default())
}

/// One extension-directory cluster.
pub struct ExtCluster {
    ext: Extension,
    /// The application/infrastructure components this extension carries, by name.
    components: BTreeMap<String, Arc<ExtTaskserv>>,
    /// The workspace's taskservs (for components of type `taskserv`).
    taskservs: Bound,
    /// What a plan refuses about the extension as found on the search path: dependencies
    /// outside their version requirement, cycles (see `check::unmet_dependencies`).
    problems: Vec<String>,
}

/// The factory registered for `ext`: `taskservs` is the registry holding the taskservs its
/// `taskserv` components name (the CLI registers taskservs before clusters); `problems` are
/// what its validate reports at every plan that uses it.
pub fn factory(
    ext: Extension,
    spec: Spec,
    taskservs: Registry,
    problems: Vec<String>,
) -> ClusterFactory {
    Arc::new(move |ctx: &ExtContext| {
        let ssh = SshOptions::for_workspace(&ctx.workspace_dir);
        let mut components = BTreeMap::new();
        for (name, cspec) in &spec.components {
            components.insert(
                name.clone(),
                Arc::new(component_taskserv(&ext, name, cspec.clone(), ssh.clone())?),
            );
        }
        // A component directory without a manifest entry runs with the default spec.
        if let Ok(rd) = std::fs::read_dir(ext.dir.join("components")) {
            for e in rd.filter_map(Result::ok) {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && !components.contains_key(&name) {
                    let c = component_taskserv(&ext, &name, ComponentSpec::default(), ssh.clone())?;
                    components.insert(name, Arc::new(c));
                }
            }
        }
        Ok(Arc::new(ExtCluster {
            ext: ext.clone(),
            components,
            taskservs: taskservs.bind(ctx.workspace_dir.clone(), &Map::new()),
            problems: problems.clone(),
        }) as Arc<dyn Cluster>)
    })
}

/// The component directory `components/NAME/` as a taskserv-like extension.
fn component_taskserv(
    ext: &Extension,
    name: &str,
    mut spec: ComponentSpec,
    ssh: SshOptions,
) -> ExtResult<ExtTaskserv> {
    let bad = |m: String| ExtError::new(ext.name.as_str(), "load", None, ErrorKind::Invalid, m);
    let cname = prov_engine::model::Name::new(name).map_err(|e| {
        bad(format!(
            "{}: component {name:?}: {e}",
            ext.dir.join("manifest.toml").display()
        ))
    })?;
    let dir = ext.dir.join("components").join(name);
    if !dir.is_dir() {
        return Err(bad(format!(
            "{}: [cluster.components.{name}] has no directory {}",
            ext.dir.join("manifest.toml").display(),
            dir.display()
        )));
    }
    if spec.timeout == 0 {
        spec.timeout = 600;
    }
    let mut component = ext.clone();
    component.name = cname;
    component.dir = dir;
    Ok(ExtTaskserv::with_scripts(
        component,
        spec,
        ssh,
        COMPONENT_SCRIPTS,
    ))
}

/// What deploying does to an instance that is already installed.
#[derive(Clone, Copy)]
enum Existing<'a> {
    /// Configure it again (a changed config).
    Configure,
    /// Upgrade it to this version.
    Upgrade(&'a str),
    /// Leave it alone (a scale).
    Keep,
}

fn string_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// What a component's config says about it.
struct Component {
    name: String,
    kind: String,
    version: String,
    replicas: usize,
    config: Value,
}

impl Component {
    fn of(req: &ComponentRequest) -> Component {
        let c = &req.config;
        Component {
            name: req.name.clone(),
            kind: match string_at(c, "type") {
                "" => "application".into(),
                k => k.to_string(),
            },
            version: string_at(c, "version").to_string(),
            replicas: replicas_of(c),
            config: c.get("config").cloned().unwrap_or_else(|| json!({})),
        }
    }
}

/// `resources.replicas` (default 1).
pub fn replicas_of(c: &Value) -> usize {
    c.pointer("/resources/replicas")
        .and_then(Value::as_u64)
        .map(|n| n as usize)
        .unwrap_or(1)
}

impl ExtCluster {
    fn err(&self, op: &str, target: &str, kind: ErrorKind, msg: impl Into<String>) -> ExtError {
        ExtError::new(self.ext.name.as_str(), op, Some(target), kind, msg)
    }

    /// The implementation that runs `c`: the taskserv of its name, or the extension's component.
    fn runner(
        &self,
        op: &str,
        req: &ComponentRequest,
        c: &Component,
    ) -> ExtResult<Arc<dyn TaskServ>> {
        if c.kind == "taskserv" {
            return self.taskservs.taskserv(&c.name).map_err(|e| {
                self.err(
                    op,
                    &req.address,
                    ErrorKind::Invalid,
                    format!("component {} of type taskserv: {}", c.name, e.message),
                )
            });
        }
        match self.components.get(&c.name) {
            Some(t) => Ok(t.clone() as Arc<dyn TaskServ>),
            None => Err(self.err(
                op,
                &req.address,
                ErrorKind::Invalid,
                format!(
                    "component {} of type {} has no directory {} (components of {}: {})",
                    c.name,
                    c.kind,
                    self.ext.dir.join("components").join(&c.name).display(),
                    self.ext.name,
                    self.components
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
        }
    }

    /// The servers `c` runs on: the first `replicas` of the cluster's.
    fn placement<'a>(
        &self,
        op: &str,
        req: &'a ComponentRequest,
        replicas: usize,
    ) -> ExtResult<&'a [ServerTarget]> {
        let servers = &req.cluster.servers;
        if replicas > servers.len() {
            return Err(self.err(
                op,
                &req.address,
                ErrorKind::Invalid,
                format!(
                    "resources.replicas = {replicas} but cluster {} runs on {} server(s); a component runs at most once per server",
                    req.cluster.name,
                    servers.len()
                ),
            ));
        }
        Ok(&servers[..replicas])
    }

    /// The request for the instance of `c` on `server` (the `index`-th of its instances).
    fn instance(
        &self,
        req: &ComponentRequest,
        c: &Component,
        server: &ServerTarget,
        index: usize,
        version: Option<&str>,
    ) -> TaskservRequest {
        let server_name = server.address.rsplit('.').next().unwrap_or_default();
        let version = version
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .or_else(|| Some(c.version.clone()).filter(|v| !v.is_empty()));
        let settings = if c.kind == "taskserv" {
            c.config.clone()
        } else {
            // The component's config, with the cluster (config, network, features, servers)
            // and the component itself beside it for templates and scripts.
            let mut s = c.config.as_object().cloned().unwrap_or_default();
            let mut cluster = req.cluster.config.as_object().cloned().unwrap_or_default();
            cluster.insert("name".into(), json!(req.cluster.name));
            cluster.insert(
                "hosts".into(),
                json!(req
                    .cluster
                    .servers
                    .iter()
                    .map(|s| address_of(&s.facts).unwrap_or_else(|| s.hostname.clone()))
                    .collect::<Vec<_>>()),
            );
            s.insert("cluster".into(), Value::Object(cluster));
            s.insert(
                "component".into(),
                json!({
                    "name": c.name,
                    "type": c.kind,
                    "version": version.clone().unwrap_or_default(),
                    "replicas": c.replicas,
                    "replica": index,
                    "resources": req.config.get("resources").cloned().unwrap_or(json!({})),
                }),
            );
            Value::Object(s)
        };
        TaskservRequest {
            address: format!("{}@{server_name}", req.address),
            name: c.name.clone(),
            version,
            settings,
            server: server.clone(),
            health_check: req
                .config
                .get("health_check")
                .cloned()
                .filter(|v| !v.is_null()),
            output: None,
        }
    }

    /// Installs `c` where it is not installed yet, does `existing` where it is, and removes
    /// the instances beyond its replicas.
    async fn deploy(
        &self,
        op: &str,
        req: &ComponentRequest,
        existing: Existing<'_>,
    ) -> ExtResult<ComponentStatus> {
        let c = Component::of(req);
        let t = self.runner(op, req, &c)?;
        let servers = self.placement(op, req, c.replicas)?;
        let version = match existing {
            Existing::Upgrade(v) => Some(v),
            _ => None,
        };
        for (i, s) in servers.iter().enumerate() {
            let ireq = self.instance(req, &c, s, i, version);
            let installed = matches!(
                t.status(&ireq).await,
                Ok(TaskservStatus {
                    installed: true,
                    ..
                })
            );
            match (installed, existing) {
                (true, Existing::Upgrade(_)) => {
                    let v = ireq.version.clone().unwrap_or_default();
                    t.upgrade(&ireq, &v).await?;
                }
                (true, Existing::Configure) => t.configure(&ireq).await?,
                (true, Existing::Keep) => {}
                (false, _) => {
                    t.install(&ireq).await?;
                }
            }
        }
        // Instances beyond the replicas (a scale down) are removed.
        for (i, s) in req.cluster.servers.iter().enumerate().skip(c.replicas) {
            let ireq = self.instance(req, &c, s, i, version);
            if matches!(
                t.status(&ireq).await,
                Ok(TaskservStatus {
                    installed: true,
                    ..
                })
            ) {
                t.uninstall(&ireq).await?;
            }
        }
        self.observe(op, req, &c, &*t).await?.ok_or_else(|| {
            self.err(
                op,
                &req.address,
                ErrorKind::Failed,
                "deployed, but its status script reports it missing",
            )
        })
    }

    /// The component's status from every instance's: running when all run, stopped when any
    /// is stopped or missing, `None` when no instance is installed.
    async fn observe(
        &self,
        op: &str,
        req: &ComponentRequest,
        c: &Component,
        t: &dyn TaskServ,
    ) -> ExtResult<Option<ComponentStatus>> {
        let n = c.replicas.min(req.cluster.servers.len());
        let mut installed = 0;
        let mut running = 0;
        let mut versions: Vec<String> = Vec::new();
        for (i, s) in req.cluster.servers[..n].iter().enumerate() {
            let st = t
                .status(&self.instance(req, c, s, i, None))
                .await
                .map_err(|e| self.err(op, &req.address, e.kind, e.to_string()))?;
            if st.installed {
                installed += 1;
                versions.extend(st.version.clone());
            }
            if st.running && st.healthy != Some(false) {
                running += 1;
            }
        }
        if installed == 0 {
            return Ok(None);
        }
        // Instances at different versions: the lowest, so drift shows the one left behind.
        let version = versions
            .into_iter()
            .min_by(|a, b| prov_taskservs::ext::compare_versions(a, b))
            .unwrap_or_default();
        Ok(Some(ComponentStatus {
            name: c.name.clone(),
            kind: c.kind.clone(),
            version,
            status: if running == n { "running" } else { "stopped" }.into(),
            replicas: installed as u32,
        }))
    }
}

/// A server's address for other servers (private first), from its recorded facts.
fn address_of(facts: &Value) -> Option<String> {
    ["private_ip", "public_ip", "address", "ip"]
        .iter()
        .find_map(|k| {
            facts
                .get(*k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .map(str::to_string)
}

#[async_trait]
impl Cluster for ExtCluster {
    fn name(&self) -> &str {
        self.ext.name.as_str()
    }

    fn output_names(&self) -> Option<Vec<String>> {
        Some(vec!["name".into(), "hosts".into(), "version".into()])
    }

    async fn validate(&self, config: &Value, components: &[Value]) -> ExtResult<Validation> {
        let mut v = Validation::default();
        // A manifest that asks for another prov or extension interface.
        v.errors
            .extend(prov_engine::extension::check::incompatible(&self.ext));
        v.errors.extend(self.problems.iter().cloned());
        let schema = self.ext.dir.join("schemas").join("cluster.ncl");
        if schema.is_file() {
            let mut whole = config.as_object().cloned().unwrap_or_default();
            for k in ["servers", "on_error"] {
                whole.remove(k);
            }
            whole.insert("components".into(), Value::Array(components.to_vec()));
            let value = Value::Object(whole);
            let s2 = schema.clone();
            let r = tokio::task::spawn_blocking(move || {
                prov_engine::config::check_against_member(&s2, Some("ClusterConfig"), &value)
            })
            .await
            .map_err(|e| {
                ExtError::new(
                    self.name(),
                    "validate",
                    None,
                    ErrorKind::Failed,
                    e.to_string(),
                )
            })?;
            if let Err(e) = r {
                v.errors
                    .push(format!("does not satisfy {}:\n{e}", schema.display()));
            }
        }
        for c in components {
            let name = string_at(c, "name");
            let kind = string_at(c, "type");
            if kind == "taskserv" {
                if !self.taskservs.registry().has_taskserv(name) {
                    v.errors.push(format!(
                        "component {name} is of type taskserv, but there is no taskserv {name:?} (known: {})",
                        self.taskservs.registry().taskserv_names().join(", ")
                    ));
                }
            } else if !self.components.contains_key(name) {
                v.errors.push(format!(
                    "component {name} of type {kind} has no directory {} (components of {}: {})",
                    self.ext.dir.join("components").join(name).display(),
                    self.ext.name,
                    self.components
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
        }
        Ok(v)
    }

    async fn create(&self, req: &ClusterRequest) -> ExtResult<ClusterResult> {
        for s in &req.servers {
            let info = s
                .provider
                .get_server_info(&s.provider_id)
                .await
                .map_err(|e| self.err("create", &req.address, e.kind, e.message))?;
            if info.is_none() {
                return Err(self.err(
                    "create",
                    &req.address,
                    ErrorKind::NotFound,
                    format!("server {} ({}) does not exist", s.hostname, s.provider_id),
                ));
            }
        }
        let hosts: Vec<String> = req
            .servers
            .iter()
            .map(|s| address_of(&s.facts).unwrap_or_else(|| s.hostname.clone()))
            .collect();
        Ok(ClusterResult {
            status: "running".into(),
            endpoints: hosts.clone(),
            outputs: json!({
                "name": req.name,
                "hosts": hosts,
                "version": string_at(&req.config, "version"),
            }),
        })
    }

    async fn delete(&self, _req: &ClusterRequest) -> ExtResult<()> {
        // Components are resources of their own, removed before their cluster; the cluster
        // itself leaves nothing on the servers.
        Ok(())
    }

    async fn status(&self, req: &ClusterRequest) -> ExtResult<ClusterStatus> {
        let components = self.list_components(req).await?;
        let status = if components.iter().all(|c| c.status == "running") {
            "running"
        } else {
            "degraded"
        };
        Ok(ClusterStatus {
            status: status.into(),
            components,
        })
    }

    async fn scale(&self, req: &ComponentRequest, replicas: u32) -> ExtResult<ComponentStatus> {
        let mut req = req.clone();
        if let Some(r) = req.config.pointer_mut("/resources/replicas") {
            *r = json!(replicas);
        } else if let Value::Object(o) = &mut req.config {
            o.insert("resources".into(), json!({ "replicas": replicas }));
        }
        self.deploy("scale", &req, Existing::Keep).await
    }

    async fn upgrade(&self, req: &ComponentRequest, version: &str) -> ExtResult<ComponentStatus> {
        self.deploy("upgrade", req, Existing::Upgrade(version))
            .await
    }

    async fn list_components(&self, req: &ClusterRequest) -> ExtResult<Vec<ComponentStatus>> {
        let mut out = Vec::new();
        for c in &req.components {
            let creq = ComponentRequest {
                address: format!("{}.{}", req.address, string_at(c, "name")),
                cluster: req.clone(),
                name: string_at(c, "name").to_string(),
                config: c.clone(),
            };
            let comp = Component::of(&creq);
            let st = match self.component_status(&creq).await? {
                Some(s) => s,
                None => ComponentStatus {
                    name: comp.name.clone(),
                    kind: comp.kind.clone(),
                    version: String::new(),
                    status: "missing".into(),
                    replicas: 0,
                },
            };
            out.push(st);
        }
        Ok(out)
    }

    async fn component_status(&self, req: &ComponentRequest) -> ExtResult<Option<ComponentStatus>> {
        let c = Component::of(req);
        let t = self.runner("component-status", req, &c)?;
        self.observe("component-status", req, &c, &*t).await
    }

    async fn restart_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        let c = Component::of(req);
        let t = self.runner("restart-component", req, &c)?;
        let servers = self.placement("restart-component", req, c.replicas)?;
        for (i, s) in servers.iter().enumerate() {
            t.restart(&self.instance(req, &c, s, i, None)).await?;
        }
        Ok(())
    }

    async fn deploy_component(&self, req: &ComponentRequest) -> ExtResult<ComponentStatus> {
        self.deploy("deploy-component", req, Existing::Configure)
            .await
    }

    async fn remove_component(&self, req: &ComponentRequest) -> ExtResult<()> {
        let c = Component::of(req);
        let t = self.runner("remove-component", req, &c)?;
        // Every server of the cluster: an instance a failed scale left behind goes too.
        for (i, s) in req.cluster.servers.iter().enumerate() {
            let ireq = self.instance(req, &c, s, i, None);
            if matches!(
                t.status(&ireq).await,
                Ok(TaskservStatus {
                    installed: false,
                    ..
                })
            ) {
                continue;
            }
            t.uninstall(&ireq).await?;
        }
        Ok(())
    }
}
