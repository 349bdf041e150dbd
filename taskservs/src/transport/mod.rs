//! How an extension-directory taskserv reaches its server: a local child process (in the
//! server's sandbox directory) or the system OpenSSH client. Both upload files and run scripts
//! with a timeout, streaming output lines and keeping the tail of stderr for errors (both through
//! prov-engine's `subprocess`).

pub mod local;
pub mod ssh;

use async_trait::async_trait;
use prov_engine::traits::{OutputFn, TransportSpec};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub use prov_engine::subprocess::{Cmd, RunError};

/// How many lines of stderr an error quotes.
pub const TAIL_LINES: usize = 20;

/// What a finished script left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutput {
    /// The exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
    /// The last `n` non-empty lines of stderr (of stdout when stderr is empty).
    pub fn tail(&self, n: usize) -> String {
        let src = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        let lines: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Why a transport could not run something (as opposed to a script that ran and failed).
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("timed out after {}s", .0.as_secs())]
    Timeout(Duration),
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("authentication failed: {0}")]
    Auth(String),
    #[error("{0}")]
    Io(String),
}

/// A way into one server.
#[async_trait]
pub trait Transport: Send + Sync {
    /// For messages: `local /var/lib/...` or `ssh root@10.0.0.2:22`.
    fn describe(&self) -> String;
    /// The prefix under which absolute server paths land (`PROV_ROOT` for scripts): the
    /// sandbox directory for local servers (over SSH too), empty for a machine of its own.
    fn root(&self) -> String;
    /// Writes `content` to the absolute server path `path` (parents created, replaced atomically).
    async fn upload(&self, path: &str, content: &[u8], mode: u32) -> Result<(), TransportError>;
    /// Runs a bash `script` with `env` exported, killing it after `timeout`. Lines of output
    /// go to `output` as they come.
    async fn run(
        &self,
        script: &str,
        env: &BTreeMap<String, String>,
        timeout: Duration,
        output: Option<&OutputFn>,
    ) -> Result<RunOutput, TransportError>;
}

/// Options for the SSH transport that do not come from the provider.
#[derive(Debug, Clone)]
pub struct SshOptions {
    /// `StrictHostKeyChecking`: `accept-new` (default), `yes`, or `no`.
    pub host_key_policy: String,
    /// The known_hosts file prov uses (`WORKSPACE/.prov/ssh/known_hosts`).
    pub known_hosts: std::path::PathBuf,
    /// Where ControlMaster sockets live (short: unix socket paths are limited to 108 bytes).
    pub control_dir: std::path::PathBuf,
    pub connect_timeout: Duration,
}

impl SshOptions {
    /// The defaults for a workspace; `PROV_SSH_HOST_KEY_POLICY` overrides the policy.
    pub fn for_workspace(workspace_dir: &Path) -> SshOptions {
        let uid = current_uid();
        SshOptions {
            host_key_policy: std::env::var("PROV_SSH_HOST_KEY_POLICY")
                .ok()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "accept-new".into()),
            known_hosts: workspace_dir.join(".prov").join("ssh").join("known_hosts"),
            control_dir: std::env::temp_dir().join(format!("prov-ssh-{uid}")),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// The real uid of this process (names per-user directories under the temporary directory).
pub fn current_uid() -> u32 {
    // The uid only names a directory; reading it from /proc avoids a libc dependency.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|u| u.parse().ok())
        .unwrap_or(0)
}

/// The transport the provider describes.
pub fn open(spec: &TransportSpec, ssh: &SshOptions) -> Box<dyn Transport> {
    match spec {
        TransportSpec::Local { root, env } => {
            Box::new(local::Local::new(root.clone(), env.clone()))
        }
        TransportSpec::Ssh { access, root } => {
            Box::new(ssh::Ssh::new(access.clone(), ssh.clone()).with_root(root))
        }
    }
}

/// `'it''s'` quoting for POSIX shells.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The script a transport runs: `env` exported, then `script`.
pub fn with_env(script: &str, env: &BTreeMap<String, String>) -> String {
    let mut s = String::from("#!/bin/bash\n");
    for (k, v) in env {
        s.push_str(&format!("export {k}={}\n", shell_quote(v)));
    }
    s.push_str(script);
    if !script.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Runs `cmd` with `stdin` fed in, collecting and streaming its output, killing its process
/// group (the script and whatever it started) after `timeout`.
pub async fn run_command(
    cmd: Cmd,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
    output: Option<&OutputFn>,
) -> Result<RunOutput, TransportError> {
    let mut cmd = cmd.timeout(timeout).on_line(output.cloned());
    if let Some(data) = stdin {
        cmd = cmd.stdin(data);
    }
    match cmd.run().await {
        Ok(out) => Ok(RunOutput {
            code: out.code(),
            stdout: out.stdout_text(),
            stderr: out.stderr_text(),
        }),
        Err(RunError::Timeout { .. }) => Err(TransportError::Timeout(timeout)),
        Err(RunError::Spawn { program, source }) => Err(TransportError::Spawn { program, source }),
        Err(RunError::Io { program, source }) => {
            Err(TransportError::Io(format!("{program}: {source}")))
        }
    }
}
