//! The `Cluster` trait: the seed's 8 cluster operations, plus deploying and removing one component.

use super::{ExtResult, ServerTarget, Validation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A cluster and the servers it runs on, config with references substituted.
#[derive(Clone)]
pub struct ClusterRequest {
    pub address: String,
    pub name: String,
    /// The cluster's config (ClusterConfig without the component list).
    pub config: Value,
    pub servers: Vec<ServerTarget>,
    /// The cluster's recorded components (each a component's config), for status and
    /// list-components; empty where the caller does not need them (apply's steps).
    pub components: Vec<Value>,
}

/// One component of a cluster (the seed's Component).
#[derive(Clone)]
pub struct ComponentRequest {
    pub address: String,
    pub cluster: ClusterRequest,
    pub name: String,
    /// The component's config: type, version, config, resources, dependencies.
    pub config: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterResult {
    pub status: String,
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub outputs: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentStatus {
    pub name: String,
    pub kind: String,
    pub version: String,
    pub status: String,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub status: String,
    pub components: Vec<ComponentStatus>,
}

/// A cluster implementation: a set of components deployed across servers.
#[async_trait]
pub trait Cluster: Send + Sync {
    fn name(&self) -> &str;
    /// The names under `outputs` that `create` reports, so a `${cluster.C.outputs.X}` naming
    /// another is refused at validate. `None`: the implementation does not say.
    fn output_names(&self) -> Option<Vec<String>> {
        None
    }
    /// Checks a cluster's configuration (`config`: the cluster without its components, which
    /// are in `components`) before anything is planned: the implementation's schema, that it
    /// can run each component.
    async fn validate(&self, config: &Value, components: &[Value]) -> ExtResult<Validation> {
        let _ = (config, components);
        Ok(Validation::default())
    }
    async fn create(&self, req: &ClusterRequest) -> ExtResult<ClusterResult>;
    async fn delete(&self, req: &ClusterRequest) -> ExtResult<()>;
    async fn status(&self, req: &ClusterRequest) -> ExtResult<ClusterStatus>;
    async fn scale(&self, req: &ComponentRequest, replicas: u32) -> ExtResult<ComponentStatus>;
    async fn upgrade(&self, req: &ComponentRequest, version: &str) -> ExtResult<ComponentStatus>;
    async fn list_components(&self, req: &ClusterRequest) -> ExtResult<Vec<ComponentStatus>>;
    async fn component_status(&self, req: &ComponentRequest) -> ExtResult<Option<ComponentStatus>>;
    async fn restart_component(&self, req: &ComponentRequest) -> ExtResult<()>;
    /// Deploys one component (the seed's create does this per component in dependency order;
    /// prov makes each component a graph node so the walker orders them).
    async fn deploy_component(&self, req: &ComponentRequest) -> ExtResult<ComponentStatus>;
    async fn remove_component(&self, req: &ComponentRequest) -> ExtResult<()>;
}
