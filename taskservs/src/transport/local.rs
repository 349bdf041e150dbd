//! The local transport: scripts run as child processes on this machine, with the server's
//! sandbox directory as working directory and as the root under which files are uploaded.

use super::{run_command, with_env, Cmd, RunOutput, Transport, TransportError};
use async_trait::async_trait;
use prov_engine::traits::OutputFn;
use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct Local {
    root: PathBuf,
    env: BTreeMap<String, String>,
}

static SEQ: AtomicU64 = AtomicU64::new(0);

impl Local {
    pub fn new(root: PathBuf, env: BTreeMap<String, String>) -> Local {
        Local { root, env }
    }
    /// Where the absolute server path `path` lands.
    pub fn host_path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

#[async_trait]
impl Transport for Local {
    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }
    fn root(&self) -> String {
        self.root
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string()
    }
    async fn upload(&self, path: &str, content: &[u8], mode: u32) -> Result<(), TransportError> {
        let dest = self.host_path(path);
        let io = |e: std::io::Error| TransportError::Io(format!("{}: {e}", dest.display()));
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io)?;
        }
        let tmp = dest.with_extension(format!(
            "prov-tmp-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        tokio::fs::write(&tmp, content).await.map_err(io)?;
        tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(io)?;
        tokio::fs::rename(&tmp, &dest).await.map_err(io)?;
        Ok(())
    }
    async fn run(
        &self,
        script: &str,
        env: &BTreeMap<String, String>,
        timeout: Duration,
        output: Option<&OutputFn>,
    ) -> Result<RunOutput, TransportError> {
        tokio::fs::create_dir_all(&self.root)
            .await
            .map_err(|e| TransportError::Io(format!("{}: {e}", self.root.display())))?;
        let mut all = self.env.clone();
        all.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
        // The script goes to a private file (never the command line, which other users can
        // read: settings may be secrets) and runs with a closed stdin.
        let file = std::env::temp_dir().join(format!(
            "prov-script-{}-{}.sh",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |e: std::io::Error| TransportError::Io(format!("{}: {e}", file.display()));
        {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o700)
                .open(&file)
                .map_err(io)?;
            f.write_all(with_env(script, &all).as_bytes()).map_err(io)?;
        }
        let cmd = Cmd::new("bash").arg(&file).current_dir(&self.root);
        let r = run_command(cmd, None, timeout, output).await;
        let _ = std::fs::remove_file(&file);
        r
    }
}
