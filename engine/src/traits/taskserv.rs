//! The `TaskServ` trait: the seed's 9 task-service operations, run against one server.

use super::{ExtResult, Provider, Validation};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

/// The server a taskserv runs on, with a handle to its provider (for get-ssh-access).
#[derive(Clone)]
pub struct ServerTarget {
    pub address: String,
    pub provider_id: String,
    pub hostname: String,
    /// The server's recorded outputs (addresses, ids).
    pub facts: Value,
    pub provider: Arc<dyn Provider>,
}

/// Receives lines of output from a running taskserv operation (scripts); the apply walker turns
/// them into `Event::Output` for the progress display.
pub type OutputFn = Arc<dyn Fn(&str) + Send + Sync>;

/// One taskserv on one server, settings with references substituted.
#[derive(Clone)]
pub struct TaskservRequest {
    pub address: String,
    pub name: String,
    pub version: Option<String>,
    pub settings: Value,
    pub server: ServerTarget,
    /// The configuration's `health_check` (endpoint or command, expect, timeout, retries), which
    /// overrides the implementation's own. Implementations run it after install, configure,
    /// upgrade and restart, and fail the operation when it does not pass (a health gate).
    pub health_check: Option<Value>,
    /// Where to stream output lines while an operation runs (`None`: nobody watches).
    pub output: Option<OutputFn>,
}

impl TaskservRequest {
    /// The request for the taskserv at `address` from its attributes as configured or recorded
    /// (`version`, `settings`, `health_check`), on `server`; no one watches its output.
    pub fn from_attributes(
        address: String,
        name: String,
        attributes: &Value,
        server: ServerTarget,
    ) -> TaskservRequest {
        TaskservRequest {
            address,
            name,
            version: attributes
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_string),
            settings: attributes
                .get("settings")
                .cloned()
                .unwrap_or_else(|| Value::Object(Default::default())),
            server,
            health_check: attributes.get("health_check").cloned(),
            output: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskservResult {
    pub version: Option<String>,
    pub status: String,
    /// Implementation-specific outputs, recorded in the state and referable with `${...}`.
    #[serde(default)]
    pub outputs: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskservStatus {
    pub installed: bool,
    pub running: bool,
    pub version: Option<String>,
    pub healthy: Option<bool>,
    #[serde(default)]
    pub detail: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateCheck {
    pub current: Option<String>,
    pub latest: Option<String>,
    pub update_available: bool,
}

/// A task service installed on servers (containerd, etcd, redis, ...).
#[async_trait]
pub trait TaskServ: Send + Sync {
    fn name(&self) -> &str;
    /// The names of the outputs `install` reports (besides `version` and `status`, which the
    /// engine records), so a `${taskserv.S.T.ATTR}` naming another is refused at validate.
    /// `None`: the implementation does not say, and any name is accepted.
    fn output_names(&self) -> Option<Vec<String>> {
        None
    }
    /// Checks settings before anything runs (the seed's schema check).
    async fn validate(&self, req: &TaskservRequest) -> ExtResult<Validation> {
        let _ = req;
        Ok(Validation::default())
    }
    async fn install(&self, req: &TaskservRequest) -> ExtResult<TaskservResult>;
    async fn uninstall(&self, req: &TaskservRequest) -> ExtResult<()>;
    async fn configure(&self, req: &TaskservRequest) -> ExtResult<()>;
    /// Outputs to record after a successful `configure` (merged into the recorded ones, e.g. a
    /// new hash of the rendered files); `None` keeps them as they were.
    async fn configured_outputs(&self, req: &TaskservRequest) -> ExtResult<Option<Value>> {
        let _ = req;
        Ok(None)
    }
    async fn status(&self, req: &TaskservRequest) -> ExtResult<TaskservStatus>;
    async fn restart(&self, req: &TaskservRequest) -> ExtResult<()>;
    async fn upgrade(&self, req: &TaskservRequest, version: &str) -> ExtResult<TaskservResult>;
    async fn get_current_version(&self, req: &TaskservRequest) -> ExtResult<Option<String>>;
    async fn get_available_versions(&self, req: &TaskservRequest) -> ExtResult<Vec<String>>;
    async fn check_updates(&self, req: &TaskservRequest) -> ExtResult<UpdateCheck>;
}
