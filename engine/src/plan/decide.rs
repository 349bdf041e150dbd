//! The planner's choice for one resource, as a pure function: desired value and record in, action and attribute diff out.
//!
//! `make.rs` gathers the facts (references substituted, the provider's rules, what happened to
//! the resource's placement) and calls [`decide`] per resource in dependency order; everything
//! here can be tested from plain values (`engine/tests/engine/planner.rs`).

use super::{Action, AttrDiff};
use crate::diff::{diff, keep_ignored};
use crate::model::{Address, Lifecycle};
use crate::refs::Substituted;
use prov_state::ResourceRecord;
use serde_json::Value;

/// What [`decide`] needs to know about one resource besides its desired value.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    /// The implementation the configuration names.
    pub implementation: &'a str,
    pub lifecycle: &'a Lifecycle,
    /// The record as refresh left it: None when never applied, or deleted outside prov (refresh
    /// drops the record of an object found gone).
    pub record: Option<&'a ResourceRecord>,
    /// `--replace` names the resource.
    pub replace_requested: bool,
    /// What the resource is placed on (its server; a cluster's servers) that is created or
    /// replaced: the resource goes with it.
    pub placement_replaced: Option<&'a Address>,
    /// Top-level attributes whose change replaces the object (a server's provider's
    /// `replace_on_change`; none for other kinds).
    pub force_new: &'a [&'a str],
    /// Attributes the implementation computes, known only once a new object exists (a server's
    /// provider's `computed_attributes`; none for other kinds).
    pub computed: &'a [&'a str],
}

/// The planner's choice for one resource.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub action: Action,
    /// Recorded vs desired, `ignore_changes` paths left out; `forces_replacement` marks the
    /// force-new ones. Empty for a create.
    pub diffs: Vec<AttrDiff>,
    /// The attributes apply will send: ignored paths keep their recorded values.
    pub after: Value,
    /// Mirrors `after`: true where the value is known only after apply.
    pub after_unknown: Value,
}

impl Decision {
    /// A new object comes into being: what it computes is unknown to its dependents.
    pub fn fresh(&self) -> bool {
        matches!(self.action, Action::Create | Action::Replace { .. })
    }
}

/// Decides what to do with one declared resource whose configuration substituted to `desired`.
pub fn decide(facts: &Facts<'_>, desired: Substituted) -> Decision {
    let Substituted {
        value: mut after,
        unknown: mut after_unknown,
    } = desired;
    let (action, diffs) = match facts.record {
        None => (Action::Create, Vec::new()),
        Some(rec) => {
            let ignore = &facts.lifecycle.ignore_changes;
            keep_ignored(&mut after, &rec.attributes, ignore);
            let mut diffs = diff(&rec.attributes, &after, &after_unknown, ignore);
            let forcing = mark_forcing(&mut diffs, facts.force_new);
            (choose(facts, rec, &forcing, &diffs), diffs)
        }
    };
    if matches!(action, Action::Create | Action::Replace { .. }) {
        unknown_until_created(&mut after, &mut after_unknown, facts.computed);
    }
    Decision {
        action,
        diffs,
        after,
        after_unknown,
    }
}

/// Marks the diffs of force-new attributes (by their top-level name) and returns their paths.
fn mark_forcing(diffs: &mut [AttrDiff], force_new: &[&str]) -> Vec<String> {
    diffs
        .iter_mut()
        .filter(|d| force_new.contains(&d.path.split('.').next().unwrap_or("")))
        .map(|d| {
            d.forces_replacement = true;
            d.path.clone()
        })
        .collect()
}

/// The action for a recorded resource, the first reason to replace winning (the order is the
/// reason the plan shows).
fn choose(
    facts: &Facts<'_>,
    rec: &ResourceRecord,
    forcing: &[String],
    diffs: &[AttrDiff],
) -> Action {
    let replace = |reason: String| Action::Replace {
        reason,
        create_before_destroy: facts.lifecycle.create_before_destroy,
    };
    if facts.replace_requested {
        replace("requested with --replace".into())
    } else if rec.implementation != facts.implementation {
        replace(format!(
            "implementation changes from {:?} to {:?}",
            rec.implementation, facts.implementation
        ))
    } else if let Some(p) = facts.placement_replaced {
        replace(format!("{p} is replaced"))
    } else if !forcing.is_empty() {
        replace(format!("{} forces replacement", forcing.join(", ")))
    } else if !diffs.is_empty() {
        Action::Update
    } else {
        Action::NoOp
    }
}

/// What the implementation computes is unknown until the new object exists (a value the
/// configuration sets itself stays as set).
fn unknown_until_created(after: &mut Value, after_unknown: &mut Value, computed: &[&str]) {
    if let (Value::Object(v), Value::Object(u)) = (after, after_unknown) {
        for k in computed {
            if !v.contains_key(*k) {
                v.insert(k.to_string(), Value::Null);
                u.insert(k.to_string(), Value::Bool(true));
            }
        }
    }
}
