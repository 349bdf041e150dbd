//! How a taskserv reaches a server: the provider says whether commands run as local processes
//! (in a sandbox directory on this machine) or over SSH (the seed's get-ssh-access).

use super::SshAccess;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The way into one server, as its provider describes it. Taskserv implementations pick the
/// matching transport (local process, or the system OpenSSH client).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TransportSpec {
    /// Commands run on this machine as child processes, with `root` as the server's filesystem
    /// root for uploaded files and working directory, and `env` added to their environment.
    Local {
        root: PathBuf,
        #[serde(default)]
        env: BTreeMap<String, String>,
    },
    /// Commands run over SSH with the system OpenSSH client.
    Ssh(SshAccess),
}
