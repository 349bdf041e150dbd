//! The plan as a reviewer reads it: one model behind every plan rendering (text, Markdown, HTML).
//!
//! [`Review::new`] redacts the plan once and builds, for every resource the plan changes, a
//! [`ResourceView`]: its symbol, its headline ("will be replaced: zone forces replacement"), its
//! structured diff (a list of `prov_engine::plan::view::Entry`, whose module doc says how to lay
//! an entry out) and its dependencies; then the drift refresh found ([`DriftView`]) and the
//! output changes (entries whose path is the output's name). A renderer walks these in order
//! and lays them out; it never diffs or redacts values itself, so every format shows the same
//! changes. [`shown`] prints a value as every renderer does (markers bare). Sections the model
//! does not cover (operations left pending, tagged servers) are read from [`Review::plan`].

use prov_engine::drift::{Drift, DriftKind};
use prov_engine::model::Address;
use prov_engine::plan::view::{self, Body, Entry, Op};
use prov_engine::plan::{Action, Plan, PlanMode, ResourceChange, Summary};
use serde_json::Value;
use std::borrow::Cow;

pub struct Review<'a> {
    /// The plan, redacted: safe to show anywhere (borrowed when it holds no secret: a plan of
    /// 10,000 unchanged resources is not copied to be shown).
    pub plan: Cow<'a, Plan>,
    pub summary: Summary,
    /// Changed resources in plan order (apply order, deletes last), then deposed objects.
    pub resources: Vec<ResourceView>,
    /// What refresh found changed outside prov.
    pub drift: Vec<DriftView>,
    /// Output changes: `path` is the output's name.
    pub outputs: Vec<Entry>,
}

/// One changed resource.
pub struct ResourceView {
    /// `server.web`, or `server.web (deposed ID)` for an object an earlier replace left behind.
    pub address: String,
    pub implementation: String,
    pub action: Action,
    /// `+`, `~`, `-/+`, `+/-`, `-`.
    pub symbol: &'static str,
    /// What happens and why: "will be created", "will be destroyed: no longer in the configuration".
    pub headline: String,
    pub entries: Vec<Entry>,
    /// Addresses it depends on: desired dependencies, or for a destroy the recorded ones.
    pub depends_on: Vec<String>,
}

impl ResourceView {
    /// Destroys and replaces: what a reviewer must not miss.
    pub fn is_destructive(&self) -> bool {
        matches!(self.action, Action::Delete { .. } | Action::Replace { .. })
    }
    /// The reason of a destroy or replace.
    pub fn reason(&self) -> Option<&str> {
        match &self.action {
            Action::Delete { reason } | Action::Replace { reason, .. } => Some(reason),
            _ => None,
        }
    }
    /// Short action name: create, update, replace, destroy.
    pub fn action_name(&self) -> &'static str {
        match self.action {
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace { .. } => "replace",
            Action::Delete { .. } => "destroy",
            Action::NoOp => "no-op",
        }
    }
}

/// One drift finding.
pub struct DriftView {
    pub address: String,
    /// `-` gone, `~` changed, `?` unmanaged, `!` could not be checked.
    pub symbol: &'static str,
    pub what: String,
    /// For changed attributes: recorded (before) → real (after).
    pub entries: Vec<Entry>,
}

impl<'a> Review<'a> {
    pub fn new(p: &'a Plan) -> Review<'a> {
        let mut review = Review::without_resources(p);
        review.resources = review.resource_views().collect();
        review
    }

    /// The model with `resources` left empty, for a renderer that lays each view out as
    /// [`Review::resource_views`] builds it (the text plan: at 10,000 creates, every view
    /// at once was ~60 MB of an apply's peak memory).
    pub fn without_resources(p: &'a Plan) -> Review<'a> {
        let plan = if p.has_sensitive() {
            Cow::Owned(p.redacted())
        } else {
            Cow::Borrowed(p)
        };
        let outputs = outputs(&plan);
        Review {
            summary: plan.summary(),
            drift: drift(&plan.drift),
            resources: Vec::new(),
            outputs,
            plan,
        }
    }

    /// Changed resources in plan order (apply order, deletes last), then deposed objects:
    /// what `resources` holds, built one at a time.
    pub fn resource_views(&self) -> impl Iterator<Item = ResourceView> + '_ {
        let changed = self
            .plan
            .changes
            .iter()
            .filter(|c| !c.action.is_noop())
            .map(resource);
        let deposed = self.plan.deposed.iter().map(|d| {
            let reason = "an earlier replace left it behind".to_string();
            ResourceView {
                address: format!("{} (deposed {})", d.address, d.provider_id),
                implementation: d.implementation.clone(),
                headline: format!("will be destroyed: {reason}"),
                action: Action::Delete { reason },
                symbol: "-",
                entries: view::destroyed(Some(&d.before)),
                depends_on: Vec::new(),
            }
        });
        changed.chain(deposed)
    }

    /// Whether any resource changes (what `resource_views` would yield).
    pub fn changes_resources(&self) -> bool {
        !self.plan.deposed.is_empty() || self.plan.changes.iter().any(|c| !c.action.is_noop())
    }
}

fn resource(c: &ResourceChange) -> ResourceView {
    let headline = match &c.action {
        Action::Create => "will be created".to_string(),
        Action::Update if matches!(c.address, Address::Taskserv(..)) => taskserv_update(c),
        Action::Update if matches!(c.address, Address::Component(..)) => component_update(c),
        Action::Update
            if matches!(c.address, Address::Cluster(_))
                && c.diffs.iter().any(|d| d.path == "version") =>
        {
            "will be updated in place (the components that follow its version are upgraded; nothing is re-created)".to_string()
        }
        Action::Update if c.diffs.iter().all(|d| d.path == "status") => {
            "will be started (stopped outside prov)".to_string()
        }
        Action::Update => "will be updated in place".to_string(),
        Action::Replace {
            reason,
            create_before_destroy,
        } => format!(
            "will be replaced{}: {reason}",
            if *create_before_destroy {
                " (new one first)"
            } else {
                ""
            }
        ),
        Action::Delete { reason } => format!("will be destroyed: {reason}"),
        Action::NoOp => "unchanged".to_string(),
    };
    let deps = match c.action {
        Action::Delete { .. } => &c.prior_dependencies,
        _ => &c.depends_on,
    };
    let mut entries = view::resource_entries(c);
    // What is destroyed is also named by its id at the provider, when the attributes lack it.
    if let (Action::Delete { .. }, Some(id)) = (&c.action, &c.provider_id) {
        if !entries.iter().any(|e| e.path == "id") {
            entries.insert(
                0,
                Entry {
                    path: "id".into(),
                    op: Op::Remove,
                    body: Body::Value {
                        before: Some(Value::String(id.clone())),
                        after: None,
                    },
                    forces_replacement: false,
                },
            );
        }
    }
    ResourceView {
        address: c.address.to_string(),
        implementation: c.implementation.clone(),
        action: c.action.clone(),
        symbol: action_symbol(&c.action),
        headline,
        entries,
        depends_on: deps.iter().map(Address::to_string).collect(),
    }
}

/// A taskserv update says what apply runs: `upgrade` when the version changes, `configure`
/// when anything else (settings, health check) does, both in that order.
fn taskserv_update(c: &ResourceChange) -> String {
    if c.diffs.iter().all(|d| d.path == "status") {
        return "will be restarted (stopped outside prov)".to_string();
    }
    let version = c.diffs.iter().any(|d| d.path == "version");
    let other = c.diffs.iter().any(|d| d.path != "version");
    match (version, other) {
        (true, true) => "will be upgraded, then configured (upgrade + configure)".to_string(),
        (true, false) => "will be upgraded (upgrade)".to_string(),
        _ => "will be configured (configure, restarts it)".to_string(),
    }
}

/// A component update says what apply runs: `restart-component` for one stopped outside prov,
/// `upgrade` with the versions, `scale` with the replicas, `deploy-component` for the rest.
fn component_update(c: &ResourceChange) -> String {
    if c.diffs.iter().all(|d| d.path == "status") {
        return "will be restarted (stopped outside prov)".to_string();
    }
    let shown = |v: &Option<serde_json::Value>| match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "(none)".into(),
    };
    let mut parts = Vec::new();
    let mut ops = Vec::new();
    if let Some(d) = c.diffs.iter().find(|d| d.path == "version") {
        parts.push(format!(
            "upgraded {} → {}",
            shown(&d.before),
            shown(&d.after)
        ));
        ops.push("upgrade");
    } else if let Some(d) = c.diffs.iter().find(|d| d.path == "resources.replicas") {
        parts.push(format!("scaled {} → {}", shown(&d.before), shown(&d.after)));
        ops.push("scale");
    }
    if c.diffs
        .iter()
        .any(|d| !matches!(d.path.as_str(), "version" | "resources.replicas" | "status"))
    {
        parts.push("redeployed".into());
        ops.push("deploy-component");
    }
    format!("will be {} ({})", parts.join(", then "), ops.join(" + "))
}

/// Drift findings as a reviewer reads them (the items must be redacted already).
pub fn drift(items: &[Drift]) -> Vec<DriftView> {
    items
        .iter()
        .map(|d| {
            let (symbol, what) = match &d.kind {
                DriftKind::Gone => ("-", "deleted outside prov".to_string()),
                DriftKind::Changed(_) => ("~", "changed outside prov (recorded -> real)".to_string()),
                DriftKind::Stopped => ("~", "stopped outside prov".to_string()),
                DriftKind::Version { recorded, real } => (
                    "~",
                    format!(
                        "version {} recorded, {} installed",
                        recorded.as_deref().unwrap_or("(none)"),
                        real.as_deref().unwrap_or("(none)")
                    ),
                ),
                DriftKind::Unmanaged { provider, id, hostname } => (
                    "?",
                    format!("server {id} ({hostname}) at {provider} carries this workspace's ownership tag but is not in the state"),
                ),
                DriftKind::Error(m) => ("!", format!("could not be checked: {m}")),
            };
            let entries = match &d.kind {
                DriftKind::Changed(diffs) => diffs
                    .iter()
                    .flat_map(|x| view::attr_entries(x, &Value::Bool(false)))
                    .collect(),
                _ => Vec::new(),
            };
            DriftView {
                address: d.address.clone(),
                symbol,
                what,
                entries,
            }
        })
        .collect()
}

fn outputs(p: &Plan) -> Vec<Entry> {
    let unknown = || Some(Value::String(view::UNKNOWN.into()));
    p.output_changes
        .iter()
        .map(|o| {
            let (op, before, after) = match (&o.before, &o.after) {
                (None, Some(a)) => (Op::Add, None, Some(a.clone())),
                (None, None) => (Op::Add, None, unknown()),
                (Some(_), Some(a)) if is_changed_secret(a) => (Op::Change, None, Some(a.clone())),
                (Some(b), Some(a)) => (Op::Change, Some(b.clone()), Some(a.clone())),
                // Removed from the configuration, or everything destroyed.
                (Some(b), None)
                    if p.mode == PlanMode::Destroy
                        || (p.mode == PlanMode::Normal && !p.outputs.contains_key(&o.name)) =>
                {
                    (Op::Remove, Some(b.clone()), None)
                }
                (Some(b), None) => (Op::Change, Some(b.clone()), unknown()),
            };
            Entry {
                path: o.name.clone(),
                op,
                body: Body::Value { before, after },
                forces_replacement: false,
            }
        })
        .collect()
}

fn is_changed_secret(v: &Value) -> bool {
    v.as_str() == Some(prov_engine::sensitive::REDACTED_CHANGED)
}

/// A value as every renderer prints it: compact JSON, except the markers (`(known after
/// apply)`, `(sensitive value)`, `(sensitive value changed)`), which are bare at any depth.
pub fn shown(v: &Value) -> String {
    let mut s = String::new();
    write_shown(v, &mut s);
    s
}

fn write_shown(v: &Value, out: &mut String) {
    match v {
        Value::String(s) if view::is_marker(s) => out.push_str(s),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_shown(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_shown(x, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The value part of a [`Body::Value`] entry: `before -> after`, or the side present.
pub fn value_text(before: Option<&Value>, after: Option<&Value>) -> String {
    match (before, after) {
        (Some(b), Some(a)) => format!("{} -> {}", shown(b), shown(a)),
        (Some(v), None) | (None, Some(v)) => shown(v),
        (None, None) => "null".to_string(),
    }
}

/// The plan symbol reviewers read for an action: `+`, `~`, `-/+` (`+/-` when the new one is
/// created first), `-`.
pub fn action_symbol(a: &Action) -> &'static str {
    match a {
        Action::NoOp => " ",
        Action::Create => "+",
        Action::Update => "~",
        Action::Replace {
            create_before_destroy: false,
            ..
        } => "-/+",
        Action::Replace {
            create_before_destroy: true,
            ..
        } => "+/-",
        Action::Delete { .. } => "-",
    }
}

/// The diff symbol of an entry: `+`, `-` or `~`.
pub fn op_symbol(op: Op) -> &'static str {
    match op {
        Op::Add => "+",
        Op::Remove => "-",
        Op::Change => "~",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_are_bare_at_any_depth() {
        assert_eq!(
            shown(&json!({"a": ["(known after apply)", "x"], "p": "(sensitive value)"})),
            r#"{"a":[(known after apply),"x"],"p":(sensitive value)}"#
        );
    }
}
