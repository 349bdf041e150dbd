//! What every command needs: the workspace, colour choice, the registry of implementations, and opening the state.

use crate::cli::Global;
use prov_engine::config::EvalOptions;
use prov_engine::crypt::{Key, Keys};
use prov_engine::extension::Root;
use prov_engine::plan::BackendRef;
use prov_engine::registry::Registry;
use prov_engine::workspace::{self, Loaded, Workspace};
use prov_state::{LockScope, OpenOptions, PgStore, SledStore, StateStore};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub struct Context {
    /// `-C DIR`, or the current directory.
    pub base: PathBuf,
    pub color: bool,
    pub registry: Registry,
    /// `--backend`.
    pub backend_flag: Option<String>,
    /// `--encryption-key-file`, as given.
    pub key_file: Option<PathBuf>,
    /// The command asked for JSON output: errors are printed as JSON on stdout too.
    pub json_errors: bool,
    /// The encryption keys, read and stretched when a command first needs them.
    keys: std::sync::OnceLock<Result<Keys, String>>,
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
        prov_engine::config::set_limits(prov_engine::config::EvalLimits {
            memory_bytes: g.eval_memory_limit,
            time: g.eval_time_limit,
        });
        // Nickel's warnings and `std.trace` output: the engine hands them over, stderr shows them.
        prov_engine::config::set_messages(|m| crate::out::stderr_fmt(format_args!("{m}")));
        let mut registry = Registry::new();
        prov_providers::register_all(&mut registry);
        prov_taskservs::register_all(&mut registry);
        prov_clusters::register_all(&mut registry);
        Ok(Context {
            base,
            color,
            registry,
            backend_flag: g.backend.clone(),
            key_file: g.encryption_key_file.clone(),
            json_errors: false,
            keys: std::sync::OnceLock::new(),
        })
    }

    /// The configured encryption keys (docs/encryption.md): the current one from
    /// `--encryption-key-file`/`PROV_ENCRYPTION_KEY_FILE` or `PROV_ENCRYPTION_KEY` (both set is
    /// an error: which one wins would be a guess), old ones for rotation from
    /// `PROV_ENCRYPTION_KEY_OLD`/`PROV_ENCRYPTION_KEY_OLD_FILE`. None configured: files are
    /// written in clear.
    pub fn keys(&self) -> Result<&Keys, String> {
        self.keys
            .get_or_init(|| read_keys(self.key_file.as_deref()))
            .as_ref()
            .map_err(Clone::clone)
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

    /// The built-in implementations plus the extension directories found for `ws`
    /// (`WS/extensions`, then `PROV_EXTENSIONS_PATH`; see `prov_engine::extension`).
    pub fn registry(&self, ws: &Workspace) -> Result<Registry, String> {
        let roots = prov_engine::extension::search_path(&ws.dir);
        let mut r = self.registry.clone();
        prov_providers::register_extensions(&mut r, &roots).map_err(|e| e.to_string())?;
        prov_taskservs::register_extensions(&mut r, &roots).map_err(|e| e.to_string())?;
        // After the taskservs: a cluster's `taskserv` components are those.
        prov_clusters::register_extensions(&mut r, &roots).map_err(|e| e.to_string())?;
        Ok(r)
    }

    /// The whole extension search path of the workspace in `ws_dir`, in precedence order: the
    /// engine's (workspace, registries, `PROV_EXTENSIONS_PATH`) plus the built-in catalogs.
    pub fn extension_roots(&self, ws_dir: &Path) -> Result<Vec<Root>, String> {
        let roots = prov_engine::extension::search_path(ws_dir);
        let roots = prov_taskservs::with_catalog(&roots).map_err(|e| e.to_string())?;
        prov_clusters::with_catalog(&roots).map_err(|e| e.to_string())
    }

    pub fn eval_options(&self) -> EvalOptions {
        EvalOptions {
            color: self.color && std::io::stderr().is_terminal(),
            ..EvalOptions::default()
        }
    }

    /// Which state backend the workspace uses: `--backend`, else `PROV_BACKEND`, else the
    /// configuration's `backend`, else sled. `config` is the evaluated configuration when the
    /// command has it; otherwise it is evaluated here (served from the evaluation cache).
    pub fn backend(
        &self,
        ws: &Workspace,
        config: Option<&serde_json::Value>,
    ) -> Result<Backend, String> {
        self.backend_for(ws, config, None)
    }

    /// [`Self::backend`] for applying a saved plan that names the state it was made against:
    /// that kind and workspace key are used (a `--backend`/`PROV_BACKEND` naming another kind is
    /// an error), and main.ncl is evaluated only when a PostgreSQL connection string is
    /// needed and `PROV_PG_CONN` does not give it.
    pub fn backend_for(
        &self,
        ws: &Workspace,
        config: Option<&serde_json::Value>,
        recorded: Option<&BackendRef>,
    ) -> Result<Backend, String> {
        if let Some(r) = recorded {
            let asked = self
                .backend_flag
                .clone()
                .or_else(|| std::env::var("PROV_BACKEND").ok().filter(|b| !b.is_empty()));
            if let Some(asked) = asked {
                if canonical_kind(&asked) != Some(r.kind.as_str()) {
                    return Err(format!(
                        "the saved plan was made against the {} state, but the {asked} backend is asked for (--backend or PROV_BACKEND); apply it where it was made, or plan again",
                        r.kind
                    ));
                }
            }
            match r.kind.as_str() {
                "sled" => {
                    return Ok(Backend::Sled {
                        dir: ws.state_dir(),
                    })
                }
                "pg" => {
                    if let Some(conn) = std::env::var("PROV_PG_CONN").ok().filter(|c| !c.is_empty())
                    {
                        return Ok(Backend::Pg {
                            conn,
                            workspace: r.workspace.clone(),
                        });
                    }
                    // The connection string is in main.ncl (it may hold a password, so the
                    // plan does not): evaluated for that alone; the key stays the plan's.
                    return match self.backend_for(ws, config, None)? {
                        Backend::Pg { conn, .. } => Ok(Backend::Pg {
                            conn,
                            workspace: r.workspace.clone(),
                        }),
                        Backend::Sled { .. } => Err("the saved plan was made against a pg state, but the configuration now names sled; apply it where it was made, or plan again".into()),
                    };
                }
                other => {
                    return Err(format!(
                    "the saved plan names state backend {other:?}, which this prov does not know"
                ))
                }
            }
        }
        let evaluated;
        let config = match config {
            Some(c) => Some(c),
            None if self.backend_flag.is_none()
                && std::env::var_os("PROV_BACKEND").is_none()
                && ws.dir.join("main.ncl").is_file() =>
            {
                match prov_engine::config::evaluate(&ws.dir, &self.eval_options()) {
                    Ok(e) => {
                        evaluated = e;
                        Some(&evaluated.value)
                    }
                    // A broken configuration must not hide the state: an existing sled state is
                    // read as it is; anything else needs the backend named. Over a limit, the
                    // runaway evaluation still runs: stop.
                    Err(e) if e.is_limit() => return Err(e.to_string()),
                    Err(_) if ws.state_dir().is_dir() => None,
                    Err(e) => {
                        return Err(format!("{e}\n(the configuration says which state backend to use; fix it or pass --backend sled|pg)"))
                    }
                }
            }
            None => None,
        };
        let section = config.and_then(|c| c.get("backend"));
        let field = |k: &str| {
            section
                .and_then(|b| b.get(k))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        };
        let kind = self
            .backend_flag
            .clone()
            .or_else(|| std::env::var("PROV_BACKEND").ok())
            .or_else(|| field("type"))
            .unwrap_or_else(|| "sled".into());
        match canonical_kind(&kind) {
            Some("sled") => Ok(Backend::Sled {
                dir: ws.state_dir(),
            }),
            Some(_) => {
                let conn = std::env::var("PROV_PG_CONN").ok().filter(|c| !c.is_empty()).or_else(|| field("conn")).ok_or(
                    "the pg backend needs a connection string: set backend.conn in main.ncl or PROV_PG_CONN",
                )?;
                // The key that identifies the workspace in a shared database: stable across
                // clones (CI runners check out into different directories).
                let workspace = field("workspace").unwrap_or_else(|| {
                    ws.dir
                        .canonicalize()
                        .ok()
                        .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                        .unwrap_or_else(|| "default".into())
                });
                Ok(Backend::Pg { conn, workspace })
            }
            None => Err(format!(
                "unknown state backend {kind:?}: use \"sled\" or \"pg\""
            )),
        }
    }

    /// Evaluates and loads the workspace with the registry and evaluation options of this run.
    pub fn load(&self, ws: &Workspace) -> Result<Loaded, String> {
        workspace::load(ws, &self.registry(ws)?, &self.eval_options())
            .map_err(|e| crate::render::engine_error(&e))
    }

    /// Whether a plan may open the state before the configuration is known to be valid
    /// (`workspace::load_with_state`'s `early`): no backend is named outside main.ncl, and the
    /// sled state the default backend names exists already (reading it creates nothing).
    pub fn may_read_state_early(&self, ws: &Workspace) -> bool {
        let named = self.backend_flag.is_some()
            || std::env::var("PROV_BACKEND").is_ok_and(|b| !b.is_empty());
        !named && ws.state_dir().is_dir()
    }

    /// Every command's preamble: the workspace loaded, then its state opened for `operation`
    /// as `access` says, with the backend the configuration names.
    pub fn load_with_state(
        &self,
        ws: &Workspace,
        operation: &str,
        lock_timeout: Duration,
        access: Access,
    ) -> Result<(Loaded, OpenState), String> {
        let loaded = self.load(ws)?;
        let state = self.open_state(
            ws,
            Some(&loaded.evaluated.value),
            operation,
            lock_timeout,
            access,
        )?;
        Ok((loaded, state))
    }

    /// Opens the workspace's state for what the command does with it (docs/concurrency.md):
    /// readers lock nothing, writers lock the resources they write as they go, and only a
    /// rewrite of the whole state locks it all. `lock_timeout` bounds every wait for a lock.
    pub fn open_state(
        &self,
        ws: &Workspace,
        config: Option<&serde_json::Value>,
        operation: &str,
        lock_timeout: Duration,
        access: Access,
    ) -> Result<OpenState, String> {
        let opts = OpenOptions {
            operation: operation.to_string(),
            lock_timeout,
            create: matches!(access, Access::Write { create: true } | Access::WholeState),
            read_only: access == Access::Read,
            scope: if access == Access::WholeState {
                LockScope::Workspace
            } else {
                LockScope::Resources
            },
        };
        self.open_backend(self.backend(ws, config)?, &opts)
    }

    /// [`Self::open_state`] for applying a saved plan: the state it records (see
    /// [`Self::backend_for`]), opened to write what it changes.
    pub fn open_state_of_plan(
        &self,
        ws: &Workspace,
        recorded: Option<&BackendRef>,
        lock_timeout: Duration,
    ) -> Result<OpenState, String> {
        let opts = OpenOptions {
            operation: "apply".to_string(),
            lock_timeout,
            create: true,
            read_only: false,
            scope: LockScope::Resources,
        };
        self.open_backend(self.backend_for(ws, None, recorded)?, &opts)
    }

    fn open_backend(&self, backend: Backend, opts: &OpenOptions) -> Result<OpenState, String> {
        match backend {
            Backend::Sled { dir } => {
                let store = SledStore::open(&dir, opts).map_err(|e| e.to_string())?;
                let lock_id = store.lock_info().id.clone();
                Ok(OpenState {
                    store: Arc::new(store),
                    lock_id,
                    backend: Backend::Sled { dir },
                })
            }
            Backend::Pg { conn, workspace } => {
                let store = PgStore::open(&conn, &workspace, opts).map_err(|e| e.to_string())?;
                let lock_id = store.lock_info().id.clone();
                Ok(OpenState {
                    store: Arc::new(store),
                    lock_id,
                    backend: Backend::Pg { conn, workspace },
                })
            }
        }
    }
}

/// `sled`, or `pg` for its spellings; none: not a backend.
fn canonical_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "sled" => Some("sled"),
        "pg" | "postgres" | "postgresql" => Some("pg"),
        _ => None,
    }
}

fn read_keys(file: Option<&Path>) -> Result<Keys, String> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let from_file = |path: &Path, flag: &str| -> Result<Key, String> {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "reading the encryption key file {} ({flag}): {e}",
                path.display()
            )
        })?;
        Key::new(&bytes, &format!("key file {}", path.display()))
    };
    let from_var = |name: &str, v: std::ffi::OsString| {
        use std::os::unix::ffi::OsStrExt;
        Key::new(v.as_bytes(), name)
    };
    let current = match (file, var("PROV_ENCRYPTION_KEY")) {
        (Some(_), Some(_)) => return Err("both PROV_ENCRYPTION_KEY and an encryption key file (--encryption-key-file or PROV_ENCRYPTION_KEY_FILE) are set: set one".into()),
        (Some(f), None) => Some(from_file(f, "--encryption-key-file")?),
        (None, Some(v)) => Some(from_var("PROV_ENCRYPTION_KEY", v)?),
        (None, None) => None,
    };
    let mut old = Vec::new();
    if let Some(v) = var("PROV_ENCRYPTION_KEY_OLD") {
        old.push(from_var("PROV_ENCRYPTION_KEY_OLD", v)?);
    }
    if let Some(f) = var("PROV_ENCRYPTION_KEY_OLD_FILE") {
        old.push(from_file(Path::new(&f), "PROV_ENCRYPTION_KEY_OLD_FILE")?);
    }
    Ok(Keys { current, old })
}

/// What a command does with the state, and so what it locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reads consistent snapshots and locks nothing (plan, drift, show, output, state
    /// list/show/pull/history, the live and taskserv verbs): a read-only database role suffices.
    Read,
    /// Writes only resources it locks first, beside other writers of other resources (apply,
    /// destroy, refresh, import, state rm/mv/unprotect); `create` makes a missing state.
    Write { create: bool },
    /// Rewrites the whole state (state push): waits for every writer, then holds it all.
    WholeState,
}

/// Where a workspace's state lives.
#[derive(Clone)]
pub enum Backend {
    Sled { dir: PathBuf },
    Pg { conn: String, workspace: String },
}

impl Backend {
    /// What a plan records of it: the kind and the workspace key, never the connection string.
    pub fn reference(&self) -> BackendRef {
        match self {
            Backend::Sled { .. } => BackendRef {
                kind: "sled".into(),
                workspace: String::new(),
            },
            Backend::Pg { workspace, .. } => BackendRef {
                kind: "pg".into(),
                workspace: workspace.clone(),
            },
        }
    }
}

/// An open state store and the id of this command's locks (its pending notes name it).
pub struct OpenState {
    pub store: Arc<dyn StateStore>,
    pub lock_id: String,
    pub backend: Backend,
}

impl prov_engine::workspace::OpenedState for OpenState {
    fn reader(&self) -> &dyn prov_state::StateRead {
        &*self.store
    }
}
