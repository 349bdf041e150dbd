//! The plan: a closed set of actions per resource with attribute diffs; made by `make`, persisted by `file`.

pub mod cost;
pub mod decide;
pub mod file;
pub mod make;
pub mod redact;
pub mod review;
pub mod view;

pub use crate::diff::AttrDiff;
use crate::model::{Address, Lifecycle, ResourceKind};
use serde_json::Value;

/// What apply will do to one resource. Closed: apply matches on it exhaustively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    NoOp,
    Create,
    Update,
    /// Delete and create again, because of `reason`; with `create_before_destroy` the new one
    /// is created first.
    Replace {
        reason: String,
        create_before_destroy: bool,
    },
    Delete {
        reason: String,
    },
}

impl Action {
    pub fn is_noop(&self) -> bool {
        matches!(self, Action::NoOp)
    }
    /// Terraform's `change.actions` for this action.
    pub fn terraform_actions(&self) -> Vec<&'static str> {
        match self {
            Action::NoOp => vec!["no-op"],
            Action::Create => vec!["create"],
            Action::Update => vec!["update"],
            Action::Replace {
                create_before_destroy: false,
                ..
            } => vec!["delete", "create"],
            Action::Replace {
                create_before_destroy: true,
                ..
            } => vec!["create", "delete"],
            Action::Delete { .. } => vec!["delete"],
        }
    }
}

/// The planned change of one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceChange {
    pub address: Address,
    pub implementation: String,
    pub action: Action,
    /// Recorded attributes (None when the resource does not exist yet).
    pub before: Option<Value>,
    /// Desired attributes with known references substituted; unknown places are null. None for
    /// a delete, and for a no-op, whose desired attributes are `before` (see [`Self::after_values`]).
    pub after: Option<Value>,
    /// Mirror of `after` with `true` where the value is known only after apply.
    pub after_unknown: Value,
    /// Desired config as written (references unresolved): what apply substitutes and records.
    /// None for a delete and a no-op (nothing is applied). The model's, shared.
    pub config: Option<std::sync::Arc<Value>>,
    pub diffs: Vec<AttrDiff>,
    /// Desired dependencies (apply order for creates and updates).
    pub depends_on: Vec<Address>,
    /// Dependencies recorded in the state (reverse order for deletes).
    pub prior_dependencies: Vec<Address>,
    pub provider_id: Option<String>,
    pub lifecycle: Lifecycle,
    pub declared_at: Option<String>,
    /// Attribute paths whose values are secrets (redacted when shown).
    pub sensitive: Vec<String>,
    /// Attribute paths left to the schema's defaults (see `model::Resource::defaults`).
    pub defaults: Vec<String>,
    /// What apply recorded for the existing object beyond its configuration (a server's `id`,
    /// addresses, `extra`; a taskserv's outputs). None when nothing exists yet.
    pub computed: Option<Value>,
    /// The references of the configuration, by top-level attribute: each `${...}` as written
    /// (`server.db.private_ip`) followed by the address it names (`server.db`).
    pub references: Vec<(String, Vec<String>)>,
}

impl ResourceChange {
    pub fn kind(&self) -> ResourceKind {
        self.address.kind()
    }
    /// The desired attributes: `after`, or for a no-op `before` (the same values).
    pub fn after_values(&self) -> Option<&Value> {
        match (&self.after, &self.action) {
            (None, Action::NoOp) => self.before.as_ref(),
            (a, _) => a.as_ref(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlanMode {
    Normal,
    Destroy,
    /// Accept the real world into the state; no resource is changed.
    RefreshOnly,
}

/// A whole plan: what apply will do, and the state and config it was made from.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub prov_version: String,
    pub mode: PlanMode,
    /// The state it was made against; empty lineage: no state existed yet.
    pub lineage: String,
    pub serial: u64,
    /// sha256 of the evaluated configuration.
    pub config_hash: String,
    /// Every resource in scope, in apply order (dependencies first), deletes last.
    pub changes: Vec<ResourceChange>,
    /// `outputs` as written; resolved at the end of apply.
    pub outputs: serde_json::Map<String, Value>,
    /// Outputs that show a sensitive value: redacted wherever a plan or apply shows them.
    pub sensitive_outputs: Vec<String>,
    /// Provider settings the plan is applied with.
    pub providers: serde_json::Map<String, Value>,
    pub targets: Vec<Address>,
    /// Outputs that would change (after None: removed, or known only after apply).
    pub output_changes: Vec<OutputChange>,
    /// Operations an earlier apply left pending, and how apply will settle them first.
    pub resolutions: Vec<crate::pending::Resolution>,
    /// Live servers tagged for addresses this plan creates that no record holds: apply refuses
    /// to create those addresses (adopt them with `--adopt` or `prov import`). Not saved in plan
    /// files: apply asks the providers again.
    pub tagged: Vec<crate::ownership::TaggedServer>,
    /// The plan asked the providers for tagged servers (so `tagged` is what they answered then).
    /// False when it did not (no refresh, a destroy) and for a plan read from a file.
    pub tagged_searched: bool,
    /// What refresh found changed outside prov (shown before the changes).
    pub drift: Vec<crate::drift::Drift>,
    /// Refresh-only plans: the records as the real world has them (None: gone).
    pub refreshed: Vec<(Address, Option<prov_state::ResourceRecord>)>,
    /// Deposed objects (left behind by create_before_destroy replaces) that apply destroys.
    pub deposed: Vec<DeposedChange>,
    /// Unchanged resources whose configuration sets `lifecycle.prevent_destroy` and whose record
    /// does not keep the protection yet: apply records it (it then outlives the setting).
    pub protect: Vec<Address>,
    /// Monthly cost before → after (None: not asked, `--no-cost`, or a refresh-only plan).
    pub cost: Option<cost::Cost>,
    /// The workspace outputs as the last apply resolved them (unchanged ones included).
    pub prior_outputs: serde_json::Map<String, Value>,
    /// When the plan was made (RFC 3339, UTC).
    pub timestamp: String,
    /// Made with `--untrusted`: refreshed through provider APIs only (see [`Self::unrefreshed`]).
    pub untrusted: bool,
    /// Recorded resources whose real state was not read, because reading it runs something on
    /// the server (taskserv status scripts, cluster queries): planned against their records.
    pub unrefreshed: Vec<Address>,
    /// The state the plan was made against, as the CLI names it (none: not recorded, e.g. a
    /// plan file written before this existed): applying a saved plan opens this one.
    pub backend: Option<BackendRef>,
}

/// Which state backend a plan was made against: its kind (`sled`, `pg`) and the key of the
/// workspace in a shared store (empty for sled: the state lives in the workspace). Never a
/// connection string or credential: those come from the environment at apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendRef {
    pub kind: String,
    pub workspace: String,
}

/// A deposed object apply destroys: it once held `address` and still exists (see
/// `prov_state::Deposed`). Every plan of a scope that covers the address destroys it, whatever
/// happens to the address itself.
#[derive(Clone, Debug, PartialEq)]
pub struct DeposedChange {
    pub address: Address,
    pub implementation: String,
    pub provider_id: String,
    /// Its attributes when it was deposed.
    pub before: Value,
    /// Attribute paths whose values are secrets (those of the record).
    pub sensitive: Vec<String>,
}

/// One workspace output's planned change.
#[derive(Clone, Debug, PartialEq)]
pub struct OutputChange {
    pub name: String,
    pub before: Option<Value>,
    /// None when removed or not known until apply (then `before` tells which).
    pub after: Option<Value>,
}

/// Counts for the summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::NoOp => {}
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace { .. } => s.replace += 1,
                Action::Delete { .. } => s.destroy += 1,
            }
        }
        s.destroy += self.deposed.len();
        s
    }
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| !c.action.is_noop())
            || !self.deposed.is_empty()
            || !self.protect.is_empty()
            || self.outputs_changed()
            || !self.resolutions.is_empty()
            || !self.refreshed.is_empty()
    }
    fn outputs_changed(&self) -> bool {
        !self.output_changes.is_empty()
    }
}
