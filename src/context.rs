//! What every command needs: the workspace, colour choice, the registry of implementations, and opening the state.

use crate::cli::Global;
use prov_engine::config::EvalOptions;
use prov_engine::ops::Workspace;
use prov_engine::registry::Registry;
use prov_state::{OpenOptions, SledStore, StateStore};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Context {
    /// `-C DIR`, or the current directory.
    pub base: PathBuf,
    pub color: bool,
    pub registry: Registry,
}

impl Context {
    pub fn new(g: &Global) -> Result<Context, String> {
        let base = match &g.chdir {
            Some(d) if !d.is_dir() => return Err(format!("-C {}: not a directory", d.display())),
            Some(d) => d.clone(),
            None => PathBuf::from("."),
        };
        let color = !g.no_color
            && std::env::var_os("NO_COLOR").is_none()
            && std::io::stdout().is_terminal();
        let mut registry = Registry::new();
        prov_providers::register_all(&mut registry);
        prov_taskservs::register_all(&mut registry);
        prov_clusters::register_all(&mut registry);
        Ok(Context {
            base,
            color,
            registry,
        })
    }

    /// The workspace: an explicit directory argument (relative to `-C`), or `-C`/cwd itself.
    pub fn workspace(&self, dir: Option<&Path>) -> Result<Workspace, String> {
        let d = match dir {
            Some(d) => self.base.join(d),
            None => self.base.clone(),
        };
        if !d.is_dir() {
            return Err(format!(
                "{}: not a directory (a prov workspace is a directory with main.ncl)",
                d.display()
            ));
        }
        Ok(Workspace::new(d))
    }

    pub fn eval_options(&self) -> EvalOptions {
        EvalOptions {
            color: self.color && std::io::stderr().is_terminal(),
            ..EvalOptions::default()
        }
    }

    /// Opens the workspace's state, taking its lock for the whole command.
    pub fn open_state(
        &self,
        ws: &Workspace,
        operation: &str,
        lock_timeout: Duration,
        create: bool,
    ) -> Result<OpenState, prov_state::StateError> {
        let opts = OpenOptions {
            operation: operation.to_string(),
            lock_timeout,
            create,
        };
        let store = SledStore::open(&ws.state_dir(), &opts)?;
        let lock_id = store.lock_info().id.clone();
        Ok(OpenState {
            store: Arc::new(store),
            lock_id,
        })
    }
}

/// An open state store and the id of the lock this command holds on it.
pub struct OpenState {
    pub store: Arc<dyn StateStore>,
    pub lock_id: String,
}
