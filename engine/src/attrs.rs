//! The attributes a resource will have once applied: what `${…}` references, outputs and
//! `ignore_changes` may name, checked at load so validate and plan refuse what apply cannot do.
//!
//! A reference resolves at apply through `records::record_attr`: the record's outputs first
//! (what the provider, taskserv or cluster reported), then its attributes (the configuration
//! with references substituted). This module accepts exactly those paths.

use crate::model::{Address, Resource};
use crate::registry::Bound;
use serde_json::Value;

/// Computed server attributes apply records from the provider's answer (`records::server_outputs`);
/// `extra` holds provider-specific facts whose keys vary, so any path below it is accepted.
const SERVER_OUTPUTS: &[&str] = &["id", "public_ip", "private_ip"];
/// What apply records for a taskserv besides the implementation's own outputs.
const TASKSERV_OUTPUTS: &[&str] = &["version", "status"];
/// What apply records for a cluster (`outputs` holds the implementation's own).
const CLUSTER_OUTPUTS: &[&str] = &["status", "endpoints"];
/// A component's record: the implementation's `ComponentStatus`.
const COMPONENT_OUTPUTS: &[&str] = &["name", "kind", "version", "status", "replicas"];

/// What a reference's target will report beyond its configuration.
enum Outputs {
    /// Exactly these first path segments (and nothing below the ones listed in `leaf`).
    Known {
        names: Vec<String>,
        leaf: &'static [&'static str],
        /// A segment under which any path is accepted.
        open: Option<&'static str>,
        /// `outputs.NAME` of a cluster: the implementation's declared names (None: any).
        nested: Option<(&'static str, Option<Vec<String>>)>,
    },
    /// The implementation does not say: any path is accepted.
    Any,
}

fn outputs_of(target: &Resource, bound: &Bound) -> Outputs {
    let strings = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match &target.addr {
        Address::Server(_) => Outputs::Known {
            names: strings(SERVER_OUTPUTS),
            leaf: SERVER_OUTPUTS,
            open: Some("extra"),
            nested: None,
        },
        Address::Taskserv(..) => match bound
            .taskserv(&target.implementation)
            .ok()
            .and_then(|t| t.output_names())
        {
            Some(mut names) => {
                names.extend(strings(TASKSERV_OUTPUTS));
                Outputs::Known {
                    names,
                    leaf: &[],
                    open: None,
                    nested: None,
                }
            }
            None => Outputs::Any,
        },
        Address::Cluster(_) => Outputs::Known {
            names: strings(CLUSTER_OUTPUTS),
            leaf: &[],
            open: None,
            nested: Some((
                "outputs",
                bound
                    .cluster(&target.implementation)
                    .ok()
                    .and_then(|c| c.output_names()),
            )),
        },
        Address::Component(..) => Outputs::Known {
            names: strings(COMPONENT_OUTPUTS),
            leaf: COMPONENT_OUTPUTS,
            open: None,
            nested: None,
        },
    }
}

/// Whether `attr` names something in a configuration value: every segment exists, and a value
/// that is itself a reference (whose shape is only known once resolved) accepts any path below.
fn in_config(config: &Value, attr: &[String]) -> bool {
    let mut cur = config;
    for p in attr {
        cur = match cur {
            Value::String(s) if s.contains("${") => return true,
            Value::Object(o) => match o.get(p) {
                Some(x) => x,
                None => return false,
            },
            Value::Array(a) => match p.parse::<usize>().ok().and_then(|i| a.get(i)) {
                Some(x) => x,
                None => return false,
            },
            _ => return false,
        };
    }
    true
}

/// Checks that `attr` (the path after the address in a reference) names an attribute `target`
/// will have once applied; the error lists the attributes it has.
pub fn check_ref_attr(target: &Resource, attr: &[String], bound: &Bound) -> Result<(), String> {
    let Some(first) = attr.first() else {
        // The whole record.
        return Ok(());
    };
    let outputs = outputs_of(target, bound);
    let known_output = match &outputs {
        Outputs::Any => true,
        Outputs::Known {
            names,
            leaf,
            open,
            nested,
        } => {
            (names.contains(first) && (attr.len() == 1 || !leaf.contains(&first.as_str())))
                || open.is_some_and(|o| o == first)
                || nested.as_ref().is_some_and(|(n, inner)| {
                    n == first
                        && match (inner, attr.get(1)) {
                            (_, None) | (None, _) => true,
                            (Some(inner), Some(x)) => inner.contains(x),
                        }
                })
        }
    };
    if known_output || in_config(&target.config, attr) {
        return Ok(());
    }
    let mut known: Vec<String> = target
        .config
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    if let Outputs::Known {
        names,
        open,
        nested,
        ..
    } = &outputs
    {
        known.extend(names.iter().cloned());
        known.extend(open.map(|o| format!("{o}.*")));
        match nested {
            Some((n, Some(inner))) => known.extend(inner.iter().map(|x| format!("{n}.{x}"))),
            Some((n, None)) => known.push(format!("{n}.*")),
            None => {}
        }
    }
    known.sort();
    known.dedup();
    Err(format!(
        "{} has no attribute {:?} (it has: {})",
        target.addr,
        attr.join("."),
        known.join(", ")
    ))
}

/// Checks each `lifecycle.ignore_changes` path of `r`: it must name an attribute of the
/// configuration (a missing last key is accepted inside an object that exists, e.g. a tag the
/// real world may add). A path that matches nothing would write a phantom attribute at apply.
pub fn check_ignore_changes(r: &Resource) -> Vec<String> {
    let mut out = Vec::new();
    for path in &r.lifecycle.ignore_changes {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        let ok = match parts.split_last() {
            Some((last, parents)) if !parents.is_empty() && !last.is_empty() => {
                in_config(&r.config, &parts)
                    || matches!(
                        crate::refs::get_path(&r.config, parents),
                        Some(Value::Object(_))
                    )
            }
            Some(_) => !path.is_empty() && in_config(&r.config, &parts),
            None => false,
        };
        if !ok {
            let known: Vec<&str> = r
                .config
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            out.push(format!(
                "lifecycle.ignore_changes names {path:?}, which matches no attribute of {} (it has: {})",
                r.addr,
                known.join(", ")
            ));
        }
    }
    out
}

/// A stand-in of the right type for a reference whose value is unknown before apply, so a
/// settings schema can be checked at plan; `None` when its type cannot be told (an
/// implementation's output, a provider's `extra` fact).
pub fn typed_placeholder(target: &Resource, attr: &[String]) -> Option<Value> {
    match (&target.addr, attr.first().map(String::as_str)) {
        // TEST-NET-1: a well-formed address that is never a real one.
        (Address::Server(_), Some("public_ip" | "private_ip")) if attr.len() == 1 => {
            return Some(Value::String("192.0.2.1".into()))
        }
        (Address::Server(_), Some("id")) if attr.len() == 1 => {
            return Some(Value::String("unknown-id".into()))
        }
        _ => {}
    }
    let v = crate::refs::get_path(&target.config, attr)?;
    let mut refs = Vec::new();
    match crate::refs::find_refs(v, "", &mut refs) {
        Ok(()) if refs.is_empty() => Some(v.clone()),
        // Interpolated text is a string whatever it refers to.
        Ok(()) if v.is_string() && !is_whole_ref(v) => Some(Value::String("unknown".into())),
        _ => None,
    }
}

fn is_whole_ref(v: &Value) -> bool {
    matches!(v.as_str().map(crate::refs::parse_template), Some(Ok(s)) if matches!(s.as_slice(), [crate::refs::Segment::Ref(_)]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Lifecycle, Name};
    use crate::registry::Registry;
    use serde_json::json;

    fn res(addr: &str, config: Value, ignore: &[&str]) -> Resource {
        Resource {
            addr: addr.parse().unwrap(),
            implementation: "nothing-registered".into(),
            config: std::sync::Arc::new(config),
            depends_on: Vec::new(),
            lifecycle: Lifecycle {
                ignore_changes: ignore.iter().map(|s| s.to_string()).collect(),
                ..Default::default()
            },
            declared_at: None,
            sensitive: Vec::new(),
            defaults: Vec::new(),
            references: Vec::new(),
        }
    }

    fn path(s: &str) -> Vec<String> {
        s.split('.').map(str::to_string).collect()
    }

    fn bound() -> Bound {
        Registry::new().bind(std::env::temp_dir(), &Default::default())
    }

    #[test]
    fn server_references_accept_exactly_what_apply_records() {
        let b = bound();
        let db = res(
            "server.db-01",
            json!({"hostname": "db-01", "plan": "small", "tags": {"env": "prod", "peer": "${server.x.private_ip}"},
                   "firewall_rules": [{"port": "22"}]}),
            &[],
        );
        for ok in [
            "private_ip",
            "public_ip",
            "id",
            "extra.anything.below",
            "hostname",
            "tags.env",
            "firewall_rules.0.port",
            // Below a value that is itself a reference: its shape is known only once resolved.
            "tags.peer.whatever",
        ] {
            assert!(check_ref_attr(&db, &path(ok), &b).is_ok(), "{ok}");
        }
        let e = check_ref_attr(&db, &path("privte_ip"), &b).unwrap_err();
        assert!(
            e.contains("server.db-01 has no attribute \"privte_ip\""),
            "{e}"
        );
        assert!(e.contains("private_ip") && e.contains("hostname"), "{e}");
        for bad in [
            "tags.nope",
            "private_ip.x",
            "firewall_rules.1",
            "plan.x",
            "status",
        ] {
            assert!(check_ref_attr(&db, &path(bad), &b).is_err(), "{bad}");
        }
    }

    #[test]
    fn taskserv_cluster_and_component_references() {
        let b = bound();
        // An implementation that does not declare its outputs (here: none registered) accepts
        // any name; the configuration's own attributes are accepted either way.
        let t = res(
            "taskserv.db-01.redis",
            json!({"version": "7", "settings": {"port": 6379}}),
            &[],
        );
        assert!(check_ref_attr(&t, &path("endpoint"), &b).is_ok());
        assert!(check_ref_attr(&t, &path("settings.port"), &b).is_ok());
        let cl = res("cluster.k", json!({"name": "k"}), &[]);
        for ok in ["status", "endpoints", "outputs.any", "name"] {
            assert!(check_ref_attr(&cl, &path(ok), &b).is_ok(), "{ok}");
        }
        assert!(check_ref_attr(&cl, &path("endpoint"), &b).is_err());
        let comp = Resource {
            addr: Address::Component(Name::new("k").unwrap(), Name::new("web").unwrap()),
            ..res("cluster.k", json!({"name": "web", "type": "app"}), &[])
        };
        for ok in ["replicas", "version", "type"] {
            assert!(check_ref_attr(&comp, &path(ok), &b).is_ok(), "{ok}");
        }
        assert!(check_ref_attr(&comp, &path("replica"), &b).is_err());
    }

    #[test]
    fn ignore_changes_must_match_an_attribute() {
        let r = res(
            "server.a",
            json!({"plan": "small", "tags": {"env": "x"}, "storage": null}),
            &[
                "plan",
                "tags.env",
                "tags.owner",
                "tagz",
                "tagz.x",
                "plan.x",
                "",
                "private_ip",
            ],
        );
        let errs = check_ignore_changes(&r);
        let named: Vec<&str> = [
            "\"tagz\"",
            "\"tagz.x\"",
            "\"plan.x\"",
            "\"\"",
            "\"private_ip\"",
        ]
        .into_iter()
        .filter(|p| errs.iter().any(|e| e.contains(&format!("names {p}"))))
        .collect();
        assert_eq!(named.len(), 5, "{errs:?}");
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(errs[0].contains("server.a"), "{errs:?}");
    }

    #[test]
    fn placeholders_have_the_referenced_type() {
        let s = res(
            "server.a",
            json!({"plan": "small", "tags": {"n": 3, "x": "${server.b.id}", "y": "p-${server.b.id}"}}),
            &[],
        );
        assert_eq!(
            typed_placeholder(&s, &path("private_ip")),
            Some(json!("192.0.2.1"))
        );
        assert_eq!(typed_placeholder(&s, &path("tags.n")), Some(json!(3)));
        assert_eq!(
            typed_placeholder(&s, &path("tags.y")),
            Some(json!("unknown"))
        );
        assert_eq!(typed_placeholder(&s, &path("tags.x")), None);
        assert_eq!(typed_placeholder(&s, &path("extra.k")), None);
    }
}
