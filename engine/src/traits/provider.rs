//! The `Provider` trait: the seed's provider interface (servers, plans, zones, pricing, access, firewall).

use super::{ExtResult, Validation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The seed's FirewallRule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirewallRule {
    pub direction: String,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    pub action: String,
}

/// Which workspace and address own a server; providers attach it as tags so drift detection
/// can find servers that carry the tag but are missing from the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    pub workspace: String,
    pub address: String,
}

impl Ownership {
    /// The tag (or label) key naming the owning workspace.
    pub const TAG_WORKSPACE: &'static str = "prov:workspace";
    /// The tag (or label) key naming the owning resource address.
    pub const TAG_ADDRESS: &'static str = "prov:address";
}

/// create-server's input: the seed's ServerConfig, references already substituted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSpec {
    pub hostname: String,
    pub plan: String,
    pub zone: String,
    pub os: String,
    #[serde(default)]
    pub ssh_keys: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub firewall_rules: Vec<FirewallRule>,
    #[serde(default)]
    pub storage: Value,
    #[serde(default)]
    pub network: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    Creating,
    Running,
    Stopped,
    Rebooting,
    Error,
    Unknown,
}

/// get-server-info's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub id: String,
    pub hostname: String,
    pub status: ServerStatus,
    pub plan: String,
    pub zone: String,
    pub os: String,
    #[serde(default)]
    pub public_ip: Option<String>,
    #[serde(default)]
    pub private_ip: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub firewall_rules: Vec<FirewallRule>,
    /// Provider-specific facts.
    #[serde(default)]
    pub extra: Value,
}

/// A change to a server that the provider can make in place (no replacement).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerUpdate {
    pub before: ServerSpec,
    pub after: ServerSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderInfo {
    pub name: String,
    pub version: String,
    pub interface: String,
    pub supported_operations: Vec<String>,
    pub required_auth: Vec<String>,
    pub supported_os: Vec<String>,
    pub regions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConnectionTest {
    pub success: bool,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInfo {
    pub name: String,
    pub cores: u32,
    pub memory_mb: u64,
    pub storage_gb: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Zone {
    pub name: String,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    pub plan: String,
    pub zone: Option<String>,
    pub hourly: f64,
    pub monthly: f64,
    pub currency: String,
}

/// get-ssh-access's answer: enough for `ssh -i KEY -p PORT USER@HOST`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SshAccess {
    pub host: String,
    pub port: u16,
    pub user: String,
    #[serde(default)]
    pub key_path: Option<String>,
}

/// Every operation of the `Provider` trait under its seed name (`info` answers with the ones an
/// implementation supports; the built-in providers support them all).
pub const PROVIDER_OPERATIONS: &[&str] = &[
    "info",
    "validate-config",
    "test-connection",
    "create-server",
    "delete-server",
    "list-servers",
    "get-server-info",
    "start-server",
    "stop-server",
    "reboot-server",
    "update-server",
    "get-pricing",
    "get-plans",
    "get-zones",
    "get-ssh-access",
    "configure-firewall",
];

/// A cloud (or simulated or local) provider of servers. Object-safe: the engine holds
/// `Arc<dyn Provider>` and never names an implementation.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The implementation name, as used in `provider = "..."`.
    fn name(&self) -> &str;
    /// Server attributes whose change forces a replacement (delete + create).
    fn replace_on_change(&self) -> &[&str] {
        &["zone", "os"]
    }
    /// Server attributes known only once the server exists (shown as "known after apply").
    fn computed_attributes(&self) -> &[&str] {
        &["id", "public_ip", "private_ip"]
    }
    /// The taskserv implementation used on this provider's servers when a taskserv names none.
    fn default_taskserv(&self) -> Option<&str> {
        None
    }
    /// The cluster implementation used for clusters on this provider's servers when none is named.
    fn default_cluster(&self) -> Option<&str> {
        None
    }
    /// How many calls to this provider may run at once (None: only the global limit).
    fn parallelism(&self) -> Option<usize> {
        None
    }

    /// Problems with one server's configuration (`servers.NAME` after defaults, references not
    /// yet substituted) that this provider can tell before any call; each message starts with
    /// the field it is about. Reported when the configuration is loaded (validate, plan, apply).
    fn check_server(&self, config: &Value) -> Vec<String> {
        let _ = config;
        Vec::new()
    }

    async fn info(&self) -> ExtResult<ProviderInfo>;
    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation>;
    async fn test_connection(&self) -> ExtResult<ConnectionTest>;

    /// Creates a server and waits until it runs.
    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo>;
    async fn delete_server(&self, id: &str) -> ExtResult<()>;
    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>>;
    /// `Ok(None)` when the server does not exist.
    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>>;
    /// How many servers one [`Provider::get_servers_info`] call may ask about. 1 (the
    /// default): refresh asks `get_server_info` about each server, concurrently.
    fn read_batch(&self) -> usize {
        1
    }
    /// get-server-info for several servers in one call, for providers whose API answers many
    /// at once (a listing filtered by ids): one answer per id, in order. Refresh calls it with
    /// at most [`Provider::read_batch`] ids. The default asks about each in turn.
    async fn get_servers_info(&self, ids: &[String]) -> Vec<ExtResult<Option<ServerInfo>>> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(self.get_server_info(id).await);
        }
        out
    }
    async fn start_server(&self, id: &str) -> ExtResult<()>;
    async fn stop_server(&self, id: &str) -> ExtResult<()>;
    async fn reboot_server(&self, id: &str) -> ExtResult<()>;
    /// In-place changes (tags, plan resize where the provider can). Not a seed operation: the
    /// seed re-created servers; prov updates what it can.
    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo>;

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>>;
    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>>;
    async fn get_zones(&self) -> ExtResult<Vec<Zone>>;

    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess>;
    /// How taskservs reach the server: SSH with get-ssh-access unless the provider runs
    /// servers on this machine without SSH (e.g. the local provider without root).
    async fn transport(&self, id: &str) -> ExtResult<super::TransportSpec> {
        Ok(super::TransportSpec::ssh(self.get_ssh_access(id).await?))
    }
    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()>;
}
