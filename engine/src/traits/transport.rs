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
    /// Commands run over SSH with the system OpenSSH client. `root` is the prefix under which
    /// absolute server paths land: empty for a machine of its own; a local sandbox, which shares
    /// this machine's filesystem, gives its directory so two sandboxes' taskservs keep apart.
    Ssh {
        access: SshAccess,
        #[serde(default)]
        root: String,
    },
}

impl TransportSpec {
    /// SSH to a machine of its own (no path prefix).
    pub fn ssh(access: SshAccess) -> TransportSpec {
        TransportSpec::Ssh {
            access,
            root: String::new(),
        }
    }
}
