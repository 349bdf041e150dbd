//! The SSH transport: the system OpenSSH client (so `~/.ssh/config` applies; no `-F`), with
//! ControlMaster multiplexing (one TCP+auth handshake per server, reused for ControlPersist
//! seconds) and an explicit host-key policy against prov's own known_hosts file.

use super::{
    run_command, shell_quote, with_env, Cmd, RunOutput, SshOptions, Transport, TransportError,
};
use async_trait::async_trait;
use prov_engine::traits::{OutputFn, SshAccess};
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Ssh {
    access: SshAccess,
    opts: SshOptions,
    /// Prefix of absolute server paths (see `TransportSpec::Ssh`), without a trailing `/`.
    root: String,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

/// How long the ControlMaster stays after the last session (seconds).
pub const CONTROL_PERSIST: u64 = 60;

impl Ssh {
    pub fn new(access: SshAccess, opts: SshOptions) -> Ssh {
        Ssh {
            access,
            opts,
            root: String::new(),
        }
    }

    /// Absolute server paths land under `root` (a local sandbox's directory).
    pub fn with_root(mut self, root: &str) -> Ssh {
        self.root = root.trim_end_matches('/').to_string();
        self
    }

    /// The ssh arguments up to and including the destination.
    pub fn args(&self) -> Vec<String> {
        let o = &self.opts;
        let mut a: Vec<String> = vec![
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "ControlMaster=auto".into(),
            "-o".into(),
            format!("ControlPath={}/%C", o.control_dir.display()),
            "-o".into(),
            format!("ControlPersist={CONTROL_PERSIST}"),
            "-o".into(),
            format!("StrictHostKeyChecking={}", o.host_key_policy),
            "-o".into(),
            format!("UserKnownHostsFile={}", o.known_hosts.display()),
            "-o".into(),
            format!("ConnectTimeout={}", o.connect_timeout.as_secs().max(1)),
            "-o".into(),
            "LogLevel=ERROR".into(),
            "-p".into(),
            self.access.port.to_string(),
        ];
        if let Some(k) = &self.access.key_path {
            a.extend([
                "-i".into(),
                k.clone(),
                "-o".into(),
                "IdentitiesOnly=yes".into(),
            ]);
        }
        a.push(format!("{}@{}", self.access.user, self.access.host));
        a
    }

    /// The ControlMaster socket directory (created 0700).
    fn prepare(&self) -> Result<(), TransportError> {
        let io = |p: &std::path::Path, e: std::io::Error| {
            TransportError::Io(format!("{}: {e}", p.display()))
        };
        let d = &self.opts.control_dir;
        std::fs::create_dir_all(d).map_err(|e| io(d, e))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io(d, e))?;
        if let Some(p) = self.opts.known_hosts.parent() {
            std::fs::create_dir_all(p).map_err(|e| io(p, e))?;
        }
        Ok(())
    }

    /// Runs `remote` (a shell command line) with `stdin`.
    async fn ssh(
        &self,
        remote: &str,
        stdin: Option<Vec<u8>>,
        timeout: Duration,
        output: Option<&OutputFn>,
    ) -> Result<RunOutput, TransportError> {
        self.prepare()?;
        let cmd = Cmd::new("ssh").args(self.args()).arg("--").arg(remote);
        let out = run_command(cmd, stdin, timeout, output).await?;
        // 255 is ssh's own failure (connection, authentication, host key), not the script's.
        if out.code == Some(255) {
            let tail = out.tail(5);
            let lower = tail.to_lowercase();
            if lower.contains("permission denied")
                || lower.contains("host key verification failed")
                || lower.contains("remote host identification has changed")
            {
                return Err(TransportError::Auth(format!("{}: {tail}", self.describe())));
            }
            if lower.contains("connection")
                || lower.contains("could not resolve")
                || lower.contains("no route")
                || lower.contains("timed out")
            {
                return Err(TransportError::Io(format!("{}: {tail}", self.describe())));
            }
        }
        Ok(out)
    }

    /// The ControlMaster socket of this destination, when one is running (`ssh -O check`).
    pub async fn master_running(&self) -> bool {
        let cmd = Cmd::new("ssh").args(self.args()).args(["-O", "check"]);
        matches!(
            run_command(cmd, None, Duration::from_secs(10), None).await,
            Ok(o) if o.success()
        )
    }

    /// Stops the ControlMaster (`ssh -O exit`).
    pub async fn close(&self) {
        let cmd = Cmd::new("ssh").args(self.args()).args(["-O", "exit"]);
        let _ = run_command(cmd, None, Duration::from_secs(10), None).await;
    }
}

#[async_trait]
impl Transport for Ssh {
    fn describe(&self) -> String {
        format!(
            "ssh {}@{}:{}",
            self.access.user, self.access.host, self.access.port
        )
    }
    fn root(&self) -> String {
        self.root.clone()
    }
    async fn upload(&self, path: &str, content: &[u8], mode: u32) -> Result<(), TransportError> {
        let path = &if path.starts_with('/') {
            format!("{}{path}", self.root)
        } else {
            path.to_string()
        };
        let dir = match path.rsplit_once('/') {
            Some(("", _)) => "/".to_string(),
            Some((d, _)) => d.to_string(),
            None => ".".to_string(),
        };
        let tmp = format!("{path}.prov-tmp-{}", SEQ.fetch_add(1, Ordering::Relaxed));
        let remote = format!(
            "umask 077 && mkdir -p {d} && cat > {t} && chmod {mode:o} {t} && mv -f {t} {p}",
            d = shell_quote(&dir),
            t = shell_quote(&tmp),
            p = shell_quote(path),
        );
        let out = self
            .ssh(
                &remote,
                Some(content.to_vec()),
                Duration::from_secs(120),
                None,
            )
            .await?;
        if out.success() {
            Ok(())
        } else {
            Err(TransportError::Io(format!(
                "upload of {path} to {} failed (exit code {}): {}",
                self.describe(),
                out.code
                    .map(|c| c.to_string())
                    .unwrap_or_else(|| "signal".into()),
                out.tail(5)
            )))
        }
    }
    async fn run(
        &self,
        script: &str,
        env: &BTreeMap<String, String>,
        timeout: Duration,
        output: Option<&OutputFn>,
    ) -> Result<RunOutput, TransportError> {
        // The script travels on stdin into a private file, then runs with a closed stdin, so
        // commands in it cannot swallow the rest of the script.
        let file = format!(
            "/tmp/prov-script-{}-{}.sh",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let remote = format!(
            "umask 077 && cat > {f} && bash {f} </dev/null; rc=$?; rm -f {f}; exit $rc",
            f = shell_quote(&file)
        );
        self.ssh(
            &remote,
            Some(with_env(script, env).into_bytes()),
            timeout,
            output,
        )
        .await
    }
}
