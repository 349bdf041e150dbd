//! The reviewer's view of a change: structured attribute diffs that every plan renderer lays out.
//!
//! A renderer never diffs values itself. It asks this module for the [`Entry`]s of a resource
//! change ([`resource_entries`]) or of drift ([`attr_entries`]) and lays each one out:
//!
//! - `entry.op` is the symbol (`+` add, `-` remove, `~` change) and `entry.path` the place
//!   (`tags.env`, `settings.config.limits.size` inside a JSON or YAML string,
//!   `firewall_rules[1]` for an array element, `["a.b"]` for a key that is not a plain name);
//! - `entry.body` is either [`Body::Value`] (show `before -> after`, or the one side present;
//!   values are JSON, strings quoted, except the markers of [`is_marker`] — `(known after
//!   apply)`, `(sensitive value)`, `(sensitive value changed)` — which are printed bare, also
//!   inside arrays and objects), [`Body::Lines`] (a multi-line string as changed hunks with
//!   [`CONTEXT_LINES`] lines of context and [`Line::Skipped`] runs in between), or
//!   [`Body::Elided`] (a short description printed bare, e.g. `3 elements` in a delete);
//! - `entry.forces_replacement` asks for a `# forces replacement` note.
//!
//! Values must come from a redacted plan ([`super::Plan::redacted`]): this module shows what it
//! is given.

use super::{Action, AttrDiff, ResourceChange};
use crate::diff::document;
use serde::Serialize;
use serde_json::Value;

/// What is shown where a value is known only after apply.
pub const UNKNOWN: &str = "(known after apply)";

/// Unchanged lines kept around each change of a multi-line string.
pub const CONTEXT_LINES: usize = 3;

/// Whether a shown string is a marker printed bare (unknown or redacted), not a quoted string.
pub fn is_marker(s: &str) -> bool {
    s == UNKNOWN || crate::sensitive::is_marker(s)
}

/// How one entry changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Add,
    Remove,
    Change,
}

/// One line of a reviewer's diff.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    pub path: String,
    pub op: Op,
    pub body: Body,
    pub forces_replacement: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Body {
    /// The old and/or new value. Both present: `before -> after`; one: that side alone (an add,
    /// a remove, or a secret that changed, shown only as `(sensitive value changed)`).
    Value {
        before: Option<Value>,
        after: Option<Value>,
    },
    /// A multi-line string, line by line.
    Lines { lines: Vec<Line> },
    /// A summary instead of the value (`18 lines`, `3 elements`), printed bare.
    Elided { summary: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "text", rename_all = "snake_case")]
pub enum Line {
    Same(String),
    Added(String),
    Removed(String),
    /// This many unchanged lines left out (`… N unchanged lines`).
    Skipped(usize),
}

/// The entries of one planned change: a create lists what will exist (every set attribute,
/// multi-line values in full, unknowns as `(known after apply)`; empty values and attributes
/// left to the schema's defaults stay out), a delete what will be destroyed (top-level
/// attributes, one line each), an update or replace its attribute diffs.
pub fn resource_entries(c: &ResourceChange) -> Vec<Entry> {
    match &c.action {
        Action::NoOp => Vec::new(),
        Action::Create => {
            let mut out = Vec::new();
            if let Some(after) = &c.after {
                let skip = |p: &str| crate::sensitive::is_sensitive(p, &c.defaults);
                listing("", after, &c.after_unknown, Op::Add, false, &skip, &mut out);
            }
            out
        }
        Action::Delete { .. } => destroyed(c.before.as_ref()),
        Action::Update | Action::Replace { .. } => c
            .diffs
            .iter()
            .flat_map(|d| {
                let parts: Vec<String> = d.path.split('.').map(str::to_string).collect();
                let unknown = crate::refs::get_path(&c.after_unknown, &parts).unwrap_or(&FALSE);
                if d.unknown && d.after.is_none() && unknown != &Value::Bool(true) {
                    // Partly unknown (a list of references, one of them unknown): the known
                    // parts come from the planned value, so only the unknown ones say so.
                    let mut d = d.clone();
                    d.after = c
                        .after
                        .as_ref()
                        .and_then(|a| crate::refs::get_path(a, &parts))
                        .cloned();
                    return attr_entries(&d, unknown);
                }
                attr_entries(d, unknown)
            })
            .collect(),
    }
}

/// What a delete shows: each top-level attribute on one line, collections and multi-line
/// strings summarised.
pub fn destroyed(before: Option<&Value>) -> Vec<Entry> {
    let mut out = Vec::new();
    if let Some(b) = before {
        listing("", b, &FALSE, Op::Remove, true, &|_| false, &mut out);
    }
    out
}

static FALSE: Value = Value::Bool(false);

/// The entries of one attribute diff. `unknown` mirrors the new value (true where it is known
/// only after apply), as `ResourceChange::after_unknown` does at the diff's path.
pub fn attr_entries(d: &AttrDiff, unknown: &Value) -> Vec<Entry> {
    let mut out = Vec::new();
    let unknown = if d.unknown { unknown } else { &FALSE };
    // A wholly unknown value is `true` in the mirror even when the mirror at the path is absent.
    let unknown = if d.unknown && !mirror_has_unknown(unknown) {
        &Value::Bool(true)
    } else {
        unknown
    };
    diff_value(
        &d.path,
        d.before.as_ref(),
        d.after.as_ref(),
        unknown,
        &mut out,
    );
    if d.forces_replacement {
        for e in &mut out {
            e.forces_replacement = true;
        }
    }
    out
}

fn mirror_has_unknown(u: &Value) -> bool {
    match u {
        Value::Bool(b) => *b,
        Value::Array(a) => a.iter().any(mirror_has_unknown),
        Value::Object(o) => o.values().any(mirror_has_unknown),
        _ => false,
    }
}

/// `path.key`, or `path["key"]` when the key is not a plain name (so paths stay readable and
/// unambiguous).
pub fn join(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{}]", Value::String(key.to_string())),
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// `v` with every place the mirror marks unknown replaced by the [`UNKNOWN`] marker.
pub fn with_unknowns(v: &Value, unknown: &Value) -> Value {
    match (v, unknown) {
        (_, Value::Bool(true)) => Value::String(UNKNOWN.into()),
        (Value::Object(o), Value::Object(u)) => Value::Object(
            o.iter()
                .map(|(k, x)| (k.clone(), with_unknowns(x, u.get(k).unwrap_or(&FALSE))))
                .collect(),
        ),
        (Value::Array(a), Value::Array(u)) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| with_unknowns(x, u.get(i).unwrap_or(&FALSE)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn value_entry(path: &str, op: Op, before: Option<Value>, after: Option<Value>) -> Entry {
    Entry {
        path: path.to_string(),
        op,
        body: Body::Value { before, after },
        forces_replacement: false,
    }
}

/// Lists a whole value as `op` entries: objects by key path, arrays of records one element per
/// entry, other arrays whole, multi-line strings line by line (`compact`: summarised, and
/// arrays of records too). Empty values are left out (nothing of them will exist, or is
/// destroyed), as are the paths `skip` names.
fn listing(
    path: &str,
    v: &Value,
    unknown: &Value,
    op: Op,
    compact: bool,
    skip: &dyn Fn(&str) -> bool,
    out: &mut Vec<Entry>,
) {
    if !path.is_empty() && skip(path) {
        return;
    }
    if unknown == &Value::Bool(true) {
        out.push(value_entry(
            path,
            op,
            None,
            Some(Value::String(UNKNOWN.into())),
        ));
        return;
    }
    if is_empty(v) && !path.is_empty() {
        return;
    }
    let side = |x: Value| match op {
        Op::Remove => (Some(x), None),
        _ => (None, Some(x)),
    };
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let u = unknown.get(k).unwrap_or(&FALSE);
                listing(&join(path, k), x, u, op, compact, skip, out);
            }
        }
        Value::Array(a) if compact && a.iter().any(|x| x.is_object() || x.is_array()) => {
            out.push(Entry {
                path: path.to_string(),
                op,
                body: Body::Elided {
                    summary: plural(a.len(), "element"),
                },
                forces_replacement: false,
            });
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for (i, x) in a.iter().enumerate() {
                let u = unknown.get(i).unwrap_or(&FALSE);
                let (b, af) = side(with_unknowns(x, u));
                out.push(value_entry(&index(path, i), op, b, af));
            }
        }
        Value::String(s) if s.contains('\n') => {
            let body = if compact {
                Body::Elided {
                    summary: plural(lines_of(s).len(), "line"),
                }
            } else {
                let lines = lines_of(s)
                    .into_iter()
                    .map(|l| match op {
                        Op::Remove => Line::Removed(l.to_string()),
                        _ => Line::Added(l.to_string()),
                    })
                    .collect();
                Body::Lines { lines }
            };
            out.push(Entry {
                path: path.to_string(),
                op,
                body,
                forces_replacement: false,
            });
        }
        _ => {
            let (b, af) = side(with_unknowns(v, unknown));
            out.push(value_entry(path, op, b, af));
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn lines_of(s: &str) -> Vec<&str> {
    s.strip_suffix('\n').unwrap_or(s).split('\n').collect()
}

/// Appends the entries that turn `before` into `after` at `path`.
fn diff_value(
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    unknown: &Value,
    out: &mut Vec<Entry>,
) {
    if unknown == &Value::Bool(true) {
        let op = if before.is_some() {
            Op::Change
        } else {
            Op::Add
        };
        out.push(value_entry(
            path,
            op,
            before.cloned(),
            Some(Value::String(UNKNOWN.into())),
        ));
        return;
    }
    match (before, after) {
        (None, None) => {}
        // An empty value added or removed is still a change to show.
        (None, Some(a)) if is_empty(a) => {
            out.push(value_entry(path, Op::Add, None, Some(a.clone())))
        }
        (Some(b), None) if is_empty(b) => {
            out.push(value_entry(path, Op::Remove, Some(b.clone()), None))
        }
        (None, Some(a)) => listing(path, a, unknown, Op::Add, false, &|_| false, out),
        (Some(b), None) => listing(path, b, &FALSE, Op::Remove, false, &|_| false, out),
        (Some(b), Some(a)) if b == a && !mirror_has_unknown(unknown) => {}
        (Some(Value::Object(b)), Some(Value::Object(a))) => {
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let u = unknown.get(k.as_str()).unwrap_or(&FALSE);
                diff_value(&join(path, k), b.get(k), a.get(k), u, out);
            }
        }
        (Some(Value::Array(b)), Some(Value::Array(a))) => array_diff(path, b, a, unknown, out),
        (Some(Value::String(b)), Some(Value::String(a))) => string_diff(path, b, a, out),
        (Some(b), Some(a)) => out.push(value_entry(
            path,
            Op::Change,
            Some(b.clone()),
            Some(a.clone()),
        )),
    }
}

/// Strings: a secret that changed says only that; JSON (or, multi-line, YAML) documents on both
/// sides are diffed by key path; other multi-line strings line by line; the rest whole.
fn string_diff(path: &str, b: &str, a: &str, out: &mut Vec<Entry>) {
    if a == crate::sensitive::REDACTED_CHANGED {
        out.push(value_entry(
            path,
            Op::Change,
            None,
            Some(Value::String(a.into())),
        ));
        return;
    }
    if !is_marker(a) && !is_marker(b) {
        if let (Some(bd), Some(ad)) = (document(b), document(a)) {
            let start = out.len();
            diff_value(path, Some(&bd), Some(&ad), &FALSE, out);
            if out.len() > start {
                return;
            }
            // Equal documents written differently (formatting, comments): show the text.
        }
    }
    if b.contains('\n') || a.contains('\n') {
        let lines = line_diff(b, a);
        if !lines.is_empty() {
            out.push(Entry {
                path: path.to_string(),
                op: Op::Change,
                body: Body::Lines { lines },
                forces_replacement: false,
            });
            return;
        }
    }
    out.push(value_entry(
        path,
        Op::Change,
        Some(Value::String(b.into())),
        Some(Value::String(a.into())),
    ));
}

/// The changed hunks of a multi-line string with [`CONTEXT_LINES`] of context; the unchanged
/// runs between (and around) them as [`Line::Skipped`]. Empty when the lines are equal.
pub fn line_diff(before: &str, after: &str) -> Vec<Line> {
    let norm = |s: &str| {
        if s.is_empty() || s.ends_with('\n') {
            s.to_string()
        } else {
            format!("{s}\n")
        }
    };
    let (b, a) = (norm(before), norm(after));
    let diff = similar::TextDiff::from_lines(&b, &a);
    let mut out = Vec::new();
    let mut shown_to = 0;
    for group in diff.grouped_ops(CONTEXT_LINES) {
        let (Some(first), Some(last)) = (group.first(), group.last()) else {
            continue;
        };
        let start = first.old_range().start;
        if start > shown_to {
            out.push(Line::Skipped(start - shown_to));
        }
        for op in &group {
            for change in diff.iter_changes(op) {
                let text = change.value().trim_end_matches('\n').to_string();
                out.push(match change.tag() {
                    similar::ChangeTag::Equal => Line::Same(text),
                    similar::ChangeTag::Delete => Line::Removed(text),
                    similar::ChangeTag::Insert => Line::Added(text),
                });
            }
        }
        shown_to = last.old_range().end;
    }
    if out.is_empty() {
        return out;
    }
    let total = diff.old_slices().len();
    if total > shown_to {
        out.push(Line::Skipped(total - shown_to));
    }
    out
}

/// What identifies an array element across versions, where it has one: a `name`, `id` or
/// `key` field, or for a firewall rule its direction, protocol and port (a rule whose source
/// or action changes is the same rule changed; another port is another rule).
fn identity(v: &Value) -> Option<String> {
    let o = v.as_object()?;
    for k in ["name", "id", "key"] {
        if let Some(Value::String(s)) = o.get(k) {
            return Some(format!("{k}={s}"));
        }
    }
    if o.contains_key("direction") && o.contains_key("protocol") {
        let f = |k: &str| o.get(k).map(|v| v.to_string()).unwrap_or_default();
        return Some(format!(
            "rule {} {} {}",
            f("direction"),
            f("protocol"),
            f("port")
        ));
    }
    None
}

/// Arrays element by element: equal elements are matched in order (a longest common
/// subsequence); among the rest, elements with the same identity are one element changed
/// (diffed inside), the others added or removed. Paths carry the index on the side that has
/// the element (the new one for adds and changes).
fn array_diff(path: &str, b: &[Value], a: &[Value], unknown: &Value, out: &mut Vec<Entry>) {
    let shown: Vec<Value> = a
        .iter()
        .enumerate()
        .map(|(i, x)| with_unknowns(x, unknown.get(i).unwrap_or(&FALSE)))
        .collect();
    let key = |v: &Value| v.to_string();
    let bk: Vec<String> = b.iter().map(key).collect();
    let ak: Vec<String> = shown.iter().map(key).collect();
    let ops = similar::capture_diff_slices(similar::Algorithm::Myers, &bk, &ak);
    for op in ops {
        let (old, new) = (op.old_range(), op.new_range());
        if matches!(op, similar::DiffOp::Equal { .. }) {
            continue;
        }
        let mut paired_old = vec![None; old.len()];
        let mut taken = vec![false; new.len()];
        for (i, oi) in old.clone().enumerate() {
            let Some(id) = identity(&b[oi]) else { continue };
            if let Some(j) = new
                .clone()
                .enumerate()
                .find(|&(j, ni)| !taken[j] && identity(&a[ni]).as_deref() == Some(id.as_str()))
                .map(|(j, _)| j)
            {
                taken[j] = true;
                paired_old[i] = Some(new.start + j);
            }
        }
        // Plain values (strings, numbers: no identity) left over pair up in order: one value
        // replaced by another, or by one known only after apply, is one element changed.
        let free: Vec<(usize, usize)> = new
            .clone()
            .enumerate()
            .filter(|&(j, ni)| !taken[j] && !a[ni].is_object())
            .collect();
        let mut free = free.into_iter();
        for (i, oi) in old.clone().enumerate() {
            if paired_old[i].is_some() || b[oi].is_object() {
                continue;
            }
            let Some((j, ni)) = free.next() else { break };
            taken[j] = true;
            paired_old[i] = Some(ni);
        }
        // In order of position: a removed element where it stood, before what is added there.
        let mut events: Vec<(usize, u8, usize)> = Vec::new();
        for (i, oi) in old.clone().enumerate() {
            if paired_old[i].is_none() {
                events.push((new.start + i, 0, oi));
            }
        }
        for (j, ni) in new.clone().enumerate() {
            events.push((ni, 1, j));
        }
        events.sort();
        for (_, kind, at) in events {
            if kind == 0 {
                out.push(value_entry(
                    &index(path, at),
                    Op::Remove,
                    Some(b[at].clone()),
                    None,
                ));
                continue;
            }
            let ni = new.start + at;
            let p = index(path, ni);
            if taken[at] {
                let oi = old.start + paired_old.iter().position(|x| *x == Some(ni)).unwrap_or(0);
                let u = unknown.get(ni).unwrap_or(&FALSE);
                diff_value(&p, Some(&b[oi]), Some(&a[ni]), u, out);
            } else {
                out.push(value_entry(&p, Op::Add, None, Some(shown[ni].clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sym(op: Op) -> &'static str {
        match op {
            Op::Add => "+",
            Op::Remove => "-",
            Op::Change => "~",
        }
    }
    use serde_json::json;

    fn attr(path: &str, before: Value, after: Value) -> AttrDiff {
        AttrDiff {
            path: path.into(),
            before: Some(before),
            after: Some(after),
            unknown: false,
            forces_replacement: false,
        }
    }

    fn shown(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match &e.body {
                Body::Value { before, after } => format!(
                    "{} {} {} -> {}",
                    sym(e.op),
                    e.path,
                    before.as_ref().map(Value::to_string).unwrap_or_default(),
                    after.as_ref().map(Value::to_string).unwrap_or_default()
                ),
                Body::Lines { lines } => format!("{} {} {lines:?}", sym(e.op), e.path),
                Body::Elided { summary } => format!("{} {} ({summary})", sym(e.op), e.path),
            })
            .collect()
    }

    #[test]
    fn json_in_strings_is_diffed_by_key_path() {
        let d = attr(
            "settings.config",
            json!(r#"{"limits":{"size":20,"tags":["a"]},"name":"x"}"#),
            json!(r#"{"limits":{"size":50,"tags":["a"]},"name":"x","new":true}"#),
        );
        assert_eq!(
            shown(&attr_entries(&d, &FALSE)),
            vec![
                "~ settings.config.limits.size 20 -> 50",
                "+ settings.config.new  -> true"
            ]
        );
    }

    #[test]
    fn yaml_in_multiline_strings_is_diffed_by_key_path() {
        let d = attr(
            "settings.values",
            json!("replicas: 2\nimage:\n  tag: v1\n"),
            json!("replicas: 3\nimage:\n  tag: v1\n"),
        );
        assert_eq!(
            shown(&attr_entries(&d, &FALSE)),
            vec!["~ settings.values.replicas 2 -> 3"]
        );
        // Plain text that YAML reads as one scalar is diffed line by line.
        let d = attr("conf", json!("a 1\nb 2\n"), json!("a 1\nb 3\n"));
        assert!(matches!(
            attr_entries(&d, &FALSE)[0].body,
            Body::Lines { .. }
        ));
    }

    #[test]
    fn multiline_strings_show_hunks_with_context() {
        let before: String = (1..=18).map(|i| format!("line {i}\n")).collect();
        let after = before.replace("line 9\n", "line nine\n");
        let lines = line_diff(&before, &after);
        assert_eq!(lines.first(), Some(&Line::Skipped(5)));
        assert_eq!(lines.last(), Some(&Line::Skipped(6)));
        assert!(lines.contains(&Line::Removed("line 9".into())));
        assert!(lines.contains(&Line::Added("line nine".into())));
        assert_eq!(lines.len(), 2 + 3 + 2 + 3);
    }

    #[test]
    fn arrays_by_identity_and_unknown_elements() {
        let rule = |port: &str, src: &str| json!({"direction": "ingress", "protocol": "tcp", "port": port, "source": src});
        let d = attr(
            "firewall_rules",
            json!([rule("22", "10.0.0.0/8"), rule("80", "0.0.0.0/0")]),
            json!([rule("22", "10.1.0.0/16"), rule("443", "0.0.0.0/0")]),
        );
        let got = shown(&attr_entries(&d, &FALSE));
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0],
            r#"~ firewall_rules[0].source "10.0.0.0/8" -> "10.1.0.0/16""#
        );
        assert!(got[1].starts_with("- firewall_rules[1] {"));
        assert!(got[2].starts_with("+ firewall_rules[1] "));

        let d = AttrDiff {
            path: "servers".into(),
            before: Some(json!(["a"])),
            after: Some(json!(["a", null, null])),
            unknown: true,
            forces_replacement: false,
        };
        assert_eq!(
            shown(&attr_entries(&d, &json!([false, true, true]))),
            vec![
                r#"+ servers[1]  -> "(known after apply)""#,
                r#"+ servers[2]  -> "(known after apply)""#
            ]
        );
    }

    #[test]
    fn a_changed_secret_shows_only_that_it_changed() {
        let d = attr(
            "settings.password",
            json!(crate::sensitive::REDACTED),
            json!(crate::sensitive::REDACTED_CHANGED),
        );
        assert_eq!(
            shown(&attr_entries(&d, &FALSE)),
            vec![r#"~ settings.password  -> "(sensitive value changed)""#]
        );
    }

    #[test]
    fn listings_skip_empty_values_and_summarise_deletes() {
        let v = json!({"a": "x", "e": {}, "l": [], "conf": "1\n2\n3", "rules": [{"p": 1}]});
        let got = shown(&destroyed(Some(&v)));
        assert_eq!(
            got,
            vec![r#"- a "x" -> "#, "- conf (3 lines)", "- rules (1 element)"]
        );
        assert_eq!(join("tags", "a.b"), r#"tags["a.b"]"#);
    }
}
