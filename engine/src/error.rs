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
    /// A plan whose resources (those it changes or reads) were written since it was made;
    /// `path` is the saved plan (None: a plan this command made); `changed` lists them (empty:
    /// the plan was made before the state existed).
    #[error("{}", stale_message(path.as_deref(), *plan_serial, *state_serial, changed))]
    StalePlan {
        path: Option<PathBuf>,
        plan_serial: u64,
        state_serial: u64,
        changed: Vec<String>,
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
    /// A request refused as the state stands (a hand edit of records naming what is missing
    /// or in the way); nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}

/// One diagnostic per line; how an error is labelled (`error:`, colour, JSON) is the CLI's
/// business (it reads them apart through [`EngineError::diagnostics`]).
fn render_diagnostics(d: &[Diagnostic]) -> String {
    d.iter()
        .map(Diagnostic::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl EngineError {
    /// The diagnostics of an invalid configuration or plan, each its own error (None: any
    /// other error, one message).
    pub fn diagnostics(&self) -> Option<&[Diagnostic]> {
        match self {
            EngineError::Invalid(d) => Some(d),
            _ => None,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// The message of [`EngineError::StalePlan`].
fn stale_message(
    path: Option<&std::path::Path>,
    plan_serial: u64,
    state_serial: u64,
    changed: &[String],
) -> String {
    const SHOWN: usize = 10;
    let what = match path {
        Some(p) => format!("saved plan {} is stale", p.display()),
        None => "the plan is stale".to_string(),
    };
    let again = match path {
        Some(_) => "run `prov plan` again",
        None => "run the command again",
    };
    if changed.is_empty() {
        return format!(
            "{what}: it was made before the state existed (serial {plan_serial}), and the state \
             is now at serial {state_serial}; {again}"
        );
    }
    let mut list = changed[..changed.len().min(SHOWN)].join(", ");
    if changed.len() > SHOWN {
        list.push_str(&format!(" and {} more", changed.len() - SHOWN));
    }
    format!(
        "{what}: {} it changes or reads changed since it was made at state serial {plan_serial} \
         (now {state_serial}): {list}; {again}",
        if changed.len() == 1 {
            "1 resource".to_string()
        } else {
            format!("{} resources", changed.len())
        }
    )
}
