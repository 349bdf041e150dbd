//! Attribute-level diff between recorded and desired values, honouring ignore_changes (a leaf: plans, drift and redaction build on it).

use serde_json::Value;

/// One attribute's change, at a dotted path (`tags.env`).
#[derive(Clone, Debug, PartialEq)]
pub struct AttrDiff {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The new value is only known after apply.
    pub unknown: bool,
    pub forces_replacement: bool,
}

/// Differences between `before` and `after` as dotted paths. Objects are compared key by key;
/// arrays and scalars as whole values. `unknown` mirrors `after` (true where unknown).
pub fn diff(before: &Value, after: &Value, unknown: &Value, ignore: &[String]) -> Vec<AttrDiff> {
    let mut out = Vec::new();
    // Equal and fully known: nothing to walk (no path strings, no sorted key lists).
    if !is_unknown(unknown) && before == after {
        return out;
    }
    walk("", Some(before), Some(after), unknown, ignore, &mut out);
    out
}

/// Keeps the recorded value at every `ignore_changes` path, so an ignored difference is neither
/// planned nor sent to the provider (Terraform's semantics).
pub fn keep_ignored(after: &mut Value, before: &Value, ignore: &[String]) {
    for path in ignore {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        let old = crate::refs::get_path(before, &parts).cloned();
        set_path(after, &parts, old);
    }
}

fn set_path(v: &mut Value, parts: &[String], new: Option<Value>) {
    let Some((last, parents)) = parts.split_last() else {
        return;
    };
    let mut cur = v;
    for p in parents {
        match cur {
            Value::Object(o) => {
                cur = o
                    .entry(p.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            _ => return,
        }
    }
    if let Value::Object(o) = cur {
        match new {
            Some(x) => {
                o.insert(last.clone(), x);
            }
            None => {
                o.remove(last);
            }
        }
    }
}

fn ignored(path: &str, ignore: &[String]) -> bool {
    ignore
        .iter()
        .any(|i| path == i || path.starts_with(&format!("{i}.")))
}

fn is_unknown(u: &Value) -> bool {
    match u {
        Value::Bool(b) => *b,
        Value::Array(a) => a.iter().any(is_unknown),
        Value::Object(o) => o.values().any(is_unknown),
        _ => false,
    }
}

fn walk(
    path: &str,
    before: Option<&Value>,
    after: Option<&Value>,
    unknown: &Value,
    ignore: &[String],
    out: &mut Vec<AttrDiff>,
) {
    if !path.is_empty() && ignored(path, ignore) {
        return;
    }
    if let (Some(Value::Object(b)), Some(Value::Object(a))) = (before, after) {
        let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            let u = unknown.get(k).unwrap_or(&Value::Bool(false));
            walk(&p, b.get(k), a.get(k), u, ignore, out);
        }
        return;
    }
    let unk = is_unknown(unknown);
    if unk || before != after {
        out.push(AttrDiff {
            path: path.to_string(),
            before: before.cloned(),
            after: if unk { None } else { after.cloned() },
            unknown: unk,
            forces_replacement: false,
        });
    }
}

/// A string holding a JSON object or array, or (when multi-line) a YAML mapping or sequence.
pub fn document(s: &str) -> Option<Value> {
    let t = s.trim_start();
    if t.starts_with('{') || t.starts_with('[') {
        if let Ok(v @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(s) {
            return Some(v);
        }
    }
    if s.trim_end().contains('\n') {
        if let Ok(v @ (Value::Object(_) | Value::Array(_))) = yaml_serde::from_str::<Value>(s) {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_paths_ignore_and_unknown() {
        let b = json!({"plan": "small", "tags": {"env": "dev", "x": "1"}, "ip": "1.2.3.4"});
        let a = json!({"plan": "large", "tags": {"env": "prod", "x": "1"}, "ip": null});
        let u = json!({"ip": true});
        let d = diff(&b, &a, &u, &["tags.env".to_string()]);
        let paths: Vec<&str> = d.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, vec!["ip", "plan"]);
        assert!(d[0].unknown);
    }
}
