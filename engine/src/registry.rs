//! The registry of extension implementations: the CLI fills it; the engine looks names up in it.

use crate::config::SettingsSchema;
use crate::traits::{Cluster, ErrorKind, ExtError, ExtResult, Provider, TaskServ};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What an implementation is built from: the workspace it serves and its settings from the config.
#[derive(Debug, Clone)]
pub struct ExtContext {
    pub workspace_dir: PathBuf,
    /// The workspace's directory name: for display and object names only. Ownership tags
    /// carry the state's identity (`Ownership::workspace`, see `ownership`).
    pub workspace_name: String,
    /// The implementation's name, e.g. `sim`.
    pub name: String,
    /// `providers.NAME` from the config (`{}` for taskservs and clusters and unconfigured providers).
    pub settings: Value,
}

pub type ProviderFactory = Arc<dyn Fn(&ExtContext) -> ExtResult<Arc<dyn Provider>> + Send + Sync>;
pub type TaskservFactory = Arc<dyn Fn(&ExtContext) -> ExtResult<Arc<dyn TaskServ>> + Send + Sync>;
pub type ClusterFactory = Arc<dyn Fn(&ExtContext) -> ExtResult<Arc<dyn Cluster>> + Send + Sync>;

/// Names → factories. Filled by the CLI; the engine never names a concrete implementation.
#[derive(Default, Clone)]
pub struct Registry {
    providers: BTreeMap<String, ProviderFactory>,
    taskservs: BTreeMap<String, TaskservFactory>,
    clusters: BTreeMap<String, ClusterFactory>,
    /// Per kind ("taskserv", ...): where extension directories were looked for, for errors
    /// about unknown names.
    searched: BTreeMap<String, Vec<String>>,
    /// Taskserv implementation → the taskservs it needs on the same server (its manifest's
    /// `dependencies`): treated as `Requires` entries of every use.
    taskserv_requires: BTreeMap<String, Vec<String>>,
    /// Provider name → the Nickel schema of its settings (`providers.NAME`), checked when a
    /// workspace is loaded ([`crate::config::settings`]).
    schemas: BTreeMap<String, SettingsSchema>,
}

impl Registry {
    /// Records where extensions of `kind` were looked for (named in unknown-name errors).
    pub fn set_searched(&mut self, kind: &str, places: Vec<String>) {
        self.searched.insert(kind.to_string(), places);
    }
    /// Records the taskservs `name` needs on the same server.
    pub fn set_taskserv_requires(&mut self, name: &str, requires: Vec<String>) {
        self.taskserv_requires.insert(name.to_string(), requires);
    }
    /// The taskservs implementation `name` needs on the same server.
    pub fn taskserv_requires(&self, name: &str) -> &[String] {
        self.taskserv_requires
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
    /// Where extensions of `kind` were looked for (empty when nobody said).
    pub fn searched(&self, kind: &str) -> &[String] {
        self.searched.get(kind).map(Vec::as_slice).unwrap_or(&[])
    }
    /// Records the schema of provider `name`'s settings.
    pub fn provider_schema(&mut self, name: &str, schema: SettingsSchema) -> &mut Self {
        self.schemas.insert(name.to_string(), schema);
        self
    }
    /// The schema of provider `name`'s settings, if it declared one.
    pub fn schema_of(&self, name: &str) -> Option<&SettingsSchema> {
        self.schemas.get(name)
    }
    pub fn new() -> Registry {
        Registry::default()
    }
    pub fn provider(&mut self, name: &str, f: ProviderFactory) -> &mut Self {
        self.providers.insert(name.to_string(), f);
        self
    }
    pub fn taskserv(&mut self, name: &str, f: TaskservFactory) -> &mut Self {
        self.taskservs.insert(name.to_string(), f);
        self
    }
    pub fn cluster(&mut self, name: &str, f: ClusterFactory) -> &mut Self {
        self.clusters.insert(name.to_string(), f);
        self
    }
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.contains_key(name)
    }
    pub fn has_taskserv(&self, name: &str) -> bool {
        self.taskservs.contains_key(name)
    }
    pub fn has_cluster(&self, name: &str) -> bool {
        self.clusters.contains_key(name)
    }
    pub fn provider_names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
    pub fn taskserv_names(&self) -> Vec<&str> {
        self.taskservs.keys().map(String::as_str).collect()
    }
    pub fn cluster_names(&self) -> Vec<&str> {
        self.clusters.keys().map(String::as_str).collect()
    }

    /// Binds the registry to one workspace: implementations are built on first use and shared.
    pub fn bind(
        &self,
        workspace_dir: PathBuf,
        provider_settings: &serde_json::Map<String, Value>,
    ) -> Bound {
        let workspace_name = workspace_dir
            .canonicalize()
            .unwrap_or_else(|_| workspace_dir.clone())
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workspace".into());
        Bound {
            registry: self.clone(),
            workspace_dir,
            workspace_name,
            settings: provider_settings.clone(),
            providers: Mutex::new(HashMap::new()),
            taskservs: Mutex::new(HashMap::new()),
            clusters: Mutex::new(HashMap::new()),
        }
    }
}

/// A registry bound to a workspace, caching built implementations.
pub struct Bound {
    registry: Registry,
    pub workspace_dir: PathBuf,
    pub workspace_name: String,
    settings: serde_json::Map<String, Value>,
    providers: Mutex<HashMap<String, Arc<dyn Provider>>>,
    taskservs: Mutex<HashMap<String, Arc<dyn TaskServ>>>,
    clusters: Mutex<HashMap<String, Arc<dyn Cluster>>>,
}

fn unknown(kind: &str, name: &str, registry: &Registry) -> ExtError {
    let known = match kind {
        "provider" => registry.provider_names(),
        "taskserv" => registry.taskserv_names(),
        _ => registry.cluster_names(),
    };
    ExtError::new(
        name,
        "load",
        None,
        ErrorKind::Invalid,
        unknown_message(kind, name, &known, registry.searched(kind)),
    )
}

/// "unknown taskserv "x" (known: a, b; searched: DIR, DIR)".
pub fn unknown_message(kind: &str, name: &str, known: &[&str], searched: &[String]) -> String {
    let mut m = format!("unknown {kind} {name:?} (known: {}", known.join(", "));
    if !searched.is_empty() {
        m.push_str(&format!("; searched: {}", searched.join(", ")));
    }
    m.push(')');
    m
}

impl Bound {
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
    fn ctx(&self, name: &str, settings: Value) -> ExtContext {
        ExtContext {
            workspace_dir: self.workspace_dir.clone(),
            workspace_name: self.workspace_name.clone(),
            name: name.to_string(),
            settings,
        }
    }
    /// Provider `name`'s settings checked against its schema through the workspace's settings
    /// cache (`config::settings::check_settings_in`), so that building the provider after this
    /// asks no Nickel: None when it has no schema, or has an extension's schema and the
    /// evaluation is `confined` (an untrusted plan evaluates no repository schema).
    pub fn check_provider_settings(
        &self,
        name: &str,
        confined: bool,
    ) -> Option<crate::config::settings::Checked> {
        let schema = self.registry.schema_of(name)?;
        if confined && matches!(schema, crate::config::SettingsSchema::File(_)) {
            return None;
        }
        let empty = Value::Object(Default::default());
        let settings = self.settings.get(name).unwrap_or(&empty);
        Some(crate::config::settings::check_settings_in(
            &self.workspace_dir,
            confined,
            schema,
            settings,
        ))
    }
    pub fn provider_settings(&self, name: &str) -> Value {
        self.settings
            .get(name)
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()))
    }
    pub fn provider(&self, name: &str) -> ExtResult<Arc<dyn Provider>> {
        let mut cache = self.providers.lock().expect("provider cache poisoned");
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let f = self
            .registry
            .providers
            .get(name)
            .ok_or_else(|| unknown("provider", name, &self.registry))?;
        let p = f(&self.ctx(name, self.provider_settings(name)))?;
        cache.insert(name.to_string(), p.clone());
        Ok(p)
    }
    pub fn taskserv(&self, name: &str) -> ExtResult<Arc<dyn TaskServ>> {
        let mut cache = self.taskservs.lock().expect("taskserv cache poisoned");
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let f = self
            .registry
            .taskservs
            .get(name)
            .ok_or_else(|| unknown("taskserv", name, &self.registry))?;
        let p = f(&self.ctx(name, Value::Object(Default::default())))?;
        cache.insert(name.to_string(), p.clone());
        Ok(p)
    }
    pub fn cluster(&self, name: &str) -> ExtResult<Arc<dyn Cluster>> {
        let mut cache = self.clusters.lock().expect("cluster cache poisoned");
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let f = self
            .registry
            .clusters
            .get(name)
            .ok_or_else(|| unknown("cluster", name, &self.registry))?;
        let p = f(&self.ctx(name, Value::Object(Default::default())))?;
        cache.insert(name.to_string(), p.clone());
        Ok(p)
    }
}
