//! The engine's error enum: each variant carries the address, file or plan it is about.

use crate::config::ConfigError;
use std::fmt;
use std::path::PathBuf;

/// One problem found in the configuration or plan, naming the resource and where it was declared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Diagnostic {
    pub address: Option<String>,
    pub declared_at: Option<String>,
    pub message: String,
}

impl Diagnostic {
    pub fn new(
        address: Option<String>,
        declared_at: Option<String>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            address,
            declared_at,
            message: message.into(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.address, &self.declared_at) {
            (Some(a), Some(at)) => write!(f, "{a} (declared at {at}): {}", self.message),
            (Some(a), None) => write!(f, "{a}: {}", self.message),
            (None, Some(at)) => write!(f, "{at}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{0}")]
    State(#[from] prov_state::StateError),
    #[error("saved plan {path} is stale: it was made against state serial {plan_serial}, but the state is now at serial {state_serial}; run `prov plan` again")]
    StalePlan {
        path: PathBuf,
        plan_serial: u64,
        state_serial: u64,
    },
    #[error("saved plan {path} belongs to another state (plan lineage {plan_lineage}, this workspace's state lineage {state_lineage}); it was made for a different workspace or state")]
    ForeignPlan {
        path: PathBuf,
        plan_lineage: String,
        state_lineage: String,
    },
    #[error("cannot read plan file {path}: {detail}")]
    PlanFile { path: PathBuf, detail: String },
    #[error("cannot read the reviewed plan {path}: {detail}")]
    ReviewedPlan { path: PathBuf, detail: String },
    #[error("saved plan {path} was made with --untrusted: taskservs and clusters were planned against their records without being read, so it is for review only; apply a plan made in a trusted job (`prov plan --out FILE`), or apply the workspace")]
    UntrustedPlan { path: PathBuf },
    #[error("{0}")]
    Extension(#[from] crate::traits::ExtError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// The caller could not open the state (its backend's own message: lock held, unreachable
    /// database, …).
    #[error("{0}")]
    StateOpen(String),
    #[error("internal error: {0}")]
    Internal(String),
}

fn render_diagnostics(d: &[Diagnostic]) -> String {
    let mut s = String::new();
    for (i, x) in d.iter().enumerate() {
        if i > 0 {
            s.push('\n');
        }
        s.push_str("error: ");
        s.push_str(&x.to_string());
    }
    s
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;
