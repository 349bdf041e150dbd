//! `${kind.name.attr}` references inside string values: parsing, finding and substitution (`$${` escapes).

use serde_json::Value;

/// One piece of a string value: literal text or a reference.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    Lit(String),
    Ref(RefPath),
}

/// The dotted path inside `${...}`, not yet split into address and attribute: which split is
/// right depends on which resources exist (`cluster.a.b` may be a component or an attribute).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RefPath(pub Vec<String>);

impl std::fmt::Display for RefPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "${{{}}}", self.0.join("."))
    }
}

/// Splits a string into literals and references. `$${` stands for a literal `${`.
pub fn parse_template(s: &str) -> Result<Vec<Segment>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        lit.push_str(&rest[..i]);
        let after = &rest[i..];
        if let Some(tail) = after.strip_prefix("$${") {
            lit.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let end = tail
                .find('}')
                .ok_or_else(|| format!("unterminated reference in {s:?}: missing '}}'"))?;
            let inner = tail[..end].trim();
            let parts: Vec<String> = inner.split('.').map(|p| p.trim().to_string()).collect();
            if parts.len() < 3 || parts.iter().any(|p| p.is_empty()) {
                return Err(format!(
                    "invalid reference ${{{inner}}}: expected ${{server.NAME.ATTRIBUTE}}, ${{taskserv.SERVER.NAME.ATTRIBUTE}}, ${{cluster.NAME.ATTRIBUTE}} or ${{cluster.NAME.COMPONENT.ATTRIBUTE}}"
                ));
            }
            if !lit.is_empty() {
                out.push(Segment::Lit(std::mem::take(&mut lit)));
            }
            out.push(Segment::Ref(RefPath(parts)));
            rest = &tail[end + 1..];
        } else {
            lit.push('$');
            rest = &after[1..];
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        out.push(Segment::Lit(lit));
    }
    Ok(out)
}

/// Every reference anywhere in a JSON value (strings in objects and arrays, at any depth).
/// `path` names where each was found, e.g. `tags.peer`.
pub fn find_refs(v: &Value, path: &str, out: &mut Vec<(String, RefPath)>) -> Result<(), String> {
    let mut buf = path.to_string();
    refs_at(v, &mut buf, out)
}

/// [`find_refs`] with one path buffer, extended and cut back while walking: a path string is
/// only made for a reference found (most values hold none).
fn refs_at(v: &Value, path: &mut String, out: &mut Vec<(String, RefPath)>) -> Result<(), String> {
    match v {
        Value::String(s) if s.contains("${") => {
            for seg in parse_template(s).map_err(|e| format!("{path}: {e}"))? {
                if let Segment::Ref(r) = seg {
                    out.push((path.clone(), r));
                }
            }
        }
        Value::Array(a) => {
            let len = path.len();
            for (i, x) in a.iter().enumerate() {
                use std::fmt::Write;
                let _ = write!(path, "[{i}]");
                refs_at(x, path, out)?;
                path.truncate(len);
            }
        }
        Value::Object(o) => {
            let len = path.len();
            for (k, x) in o {
                if len > 0 {
                    path.push('.');
                }
                path.push_str(k);
                refs_at(x, path, out)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

/// What a reference resolves to.
pub enum Resolved {
    Known(Value),
    /// Only known after apply (the target is created or replaced in this plan).
    Unknown,
}

/// The result of substituting references in a value: the value, and a mirror of it with
/// `true` where the value is unknown (Terraform's `after_unknown` shape).
pub struct Substituted {
    pub value: Value,
    pub unknown: Value,
}

impl Substituted {
    pub fn is_fully_known(&self) -> bool {
        !contains_true(&self.unknown)
    }
}

fn contains_true(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Array(a) => a.iter().any(contains_true),
        Value::Object(o) => o.values().any(contains_true),
        _ => false,
    }
}

/// Replaces references using `lookup`. A string that is exactly one reference takes the
/// referenced value's type; references inside longer strings are interpolated as text.
/// Strings without references get their `$${` escapes unescaped.
pub fn substitute(
    v: &Value,
    lookup: &mut dyn FnMut(&RefPath) -> Result<Resolved, String>,
) -> Result<Substituted, String> {
    match v {
        Value::String(s) if s.contains('$') => {
            let segs = parse_template(s)?;
            if let [Segment::Ref(r)] = segs.as_slice() {
                return Ok(match lookup(r)? {
                    Resolved::Known(x) => Substituted {
                        value: x,
                        unknown: Value::Bool(false),
                    },
                    Resolved::Unknown => Substituted {
                        value: Value::Null,
                        unknown: Value::Bool(true),
                    },
                });
            }
            let mut text = String::new();
            for seg in segs {
                match seg {
                    Segment::Lit(l) => text.push_str(&l),
                    Segment::Ref(r) => match lookup(&r)? {
                        Resolved::Known(Value::String(x)) => text.push_str(&x),
                        Resolved::Known(x) => text.push_str(&x.to_string()),
                        Resolved::Unknown => {
                            return Ok(Substituted {
                                value: Value::Null,
                                unknown: Value::Bool(true),
                            })
                        }
                    },
                }
            }
            Ok(Substituted {
                value: Value::String(text),
                unknown: Value::Bool(false),
            })
        }
        Value::Array(a) => {
            let mut vals = Vec::with_capacity(a.len());
            let mut unk = Vec::with_capacity(a.len());
            for x in a {
                let s = substitute(x, lookup)?;
                vals.push(s.value);
                unk.push(s.unknown);
            }
            Ok(Substituted {
                value: Value::Array(vals),
                unknown: Value::Array(unk),
            })
        }
        Value::Object(o) => {
            let mut vals = serde_json::Map::with_capacity(o.len());
            let mut unk = serde_json::Map::new();
            for (k, x) in o {
                let s = substitute(x, lookup)?;
                vals.insert(k.clone(), s.value);
                if contains_true(&s.unknown) {
                    unk.insert(k.clone(), s.unknown);
                }
            }
            Ok(Substituted {
                value: Value::Object(vals),
                unknown: Value::Object(unk),
            })
        }
        other => Ok(Substituted {
            value: other.clone(),
            unknown: Value::Bool(false),
        }),
    }
}

/// Whether `substitute(v, lookup)` would give exactly `expected`, fully known, without building
/// the substituted value (a plan's common case: an unchanged resource). Errors are reported as
/// `false`: the caller substitutes for real and gets them there.
pub fn substitutes_to(
    v: &Value,
    expected: &Value,
    lookup: &mut dyn FnMut(&RefPath) -> Result<Resolved, String>,
) -> bool {
    match v {
        Value::String(s) if s.contains('$') => {
            let Ok(segs) = parse_template(s) else {
                return false;
            };
            if let [Segment::Ref(r)] = segs.as_slice() {
                return matches!(lookup(r), Ok(Resolved::Known(x)) if &x == expected);
            }
            let Value::String(want) = expected else {
                return false;
            };
            let mut text = String::with_capacity(want.len());
            for seg in segs {
                match seg {
                    Segment::Lit(l) => text.push_str(&l),
                    Segment::Ref(r) => match lookup(&r) {
                        Ok(Resolved::Known(Value::String(x))) => text.push_str(&x),
                        Ok(Resolved::Known(x)) => text.push_str(&x.to_string()),
                        _ => return false,
                    },
                }
            }
            &text == want
        }
        Value::Array(a) => match expected {
            Value::Array(e) => {
                a.len() == e.len() && a.iter().zip(e).all(|(x, y)| substitutes_to(x, y, lookup))
            }
            _ => false,
        },
        Value::Object(o) => match expected {
            // Same size and every key of `v` present: the same keys. A record was written from
            // a value of the same configuration, so its keys are nearly always in the same
            // order: the pair at the same position is tried before a hashed lookup (at 10,000
            // unchanged servers the lookups were most of the plan's diff).
            Value::Object(e) => {
                o.len() == e.len()
                    && o.iter().zip(e.iter()).all(|((k, x), (ek, ey))| {
                        if k == ek {
                            substitutes_to(x, ey, lookup)
                        } else {
                            e.get(k).is_some_and(|y| substitutes_to(x, y, lookup))
                        }
                    })
            }
            _ => false,
        },
        other => other == expected,
    }
}

/// Looks up a dotted attribute path (`tags.env`, `ips.0`) in a JSON value.
pub fn get_path<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    let mut cur = v;
    for p in path {
        cur = match cur {
            Value::Object(o) => o.get(p)?,
            Value::Array(a) => a.get(p.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_refs_and_escapes() {
        let segs = parse_template("http://${server.web-01.public_ip}:80/$${not.a.ref}").unwrap();
        assert_eq!(
            segs,
            vec![
                Segment::Lit("http://".into()),
                Segment::Ref(RefPath(vec![
                    "server".into(),
                    "web-01".into(),
                    "public_ip".into()
                ])),
                Segment::Lit(":80/${not.a.ref}".into()),
            ]
        );
        assert!(parse_template("${server.x").is_err());
        assert!(parse_template("${server.x}").is_err());
        assert_eq!(
            parse_template("cost: $5").unwrap(),
            vec![Segment::Lit("cost: $5".into())]
        );
    }

    #[test]
    fn substitutes_to_agrees_with_substitute() {
        let v = json!({"a": "${server.x.port}", "b": "p=${server.x.port}", "c": ["$${x}"], "n": 1});
        let mut known = |_: &RefPath| Ok(Resolved::Known(json!(80)));
        let want = substitute(&v, &mut known).unwrap().value;
        assert!(substitutes_to(&v, &want, &mut known));
        for other in [
            json!({"a": 80, "b": "p=80", "c": ["${x}"]}),
            json!({"a": 80, "b": "p=80", "c": ["${x}"], "n": 2}),
            json!({"a": 80, "b": "p=81", "c": ["${x}"], "n": 1}),
            json!({"a": 80, "b": "p=80", "c": ["${x}"], "n": 1, "extra": 0}),
        ] {
            assert!(!substitutes_to(&v, &other, &mut known), "{other}");
        }
        // Unknown references and errors never match: the caller substitutes for real.
        assert!(!substitutes_to(&v, &want, &mut |_| Ok(Resolved::Unknown)));
        assert!(!substitutes_to(&v, &want, &mut |_| Err("no".into())));
        assert!(!substitutes_to(
            &json!("${bad"),
            &json!("${bad"),
            &mut known
        ));
    }

    #[test]
    fn substitutes_whole_and_interpolated_and_unknown() {
        let v = json!({"a": "${server.x.port}", "b": "p=${server.x.port}", "c": ["${server.y.ip}"], "d": "$${x}"});
        let s = substitute(&v, &mut |r| {
            Ok(if r.0[1] == "x" {
                Resolved::Known(json!(80))
            } else {
                Resolved::Unknown
            })
        })
        .unwrap();
        assert_eq!(
            s.value,
            json!({"a": 80, "b": "p=80", "c": [null], "d": "${x}"})
        );
        assert_eq!(s.unknown, json!({"c": [true]}));
        assert!(!s.is_fully_known());
    }
}
