//! The planner: `decide` case by case from plain values (create, no-op, update, replace and its reasons, create_before_destroy, ignore_changes, deleted outside prov, unknowns), and against the fakes: nothing to do after an apply, replace vs update by attribute, ignore_changes, prevent_destroy, targets, and drift found by refresh planned back.

use super::{servers, world};
use prov_engine::error::EngineError;
use prov_engine::model::{Address, Lifecycle};
use prov_engine::plan::decide::{decide, Facts};
use prov_engine::plan::make::PlanOptions;
use prov_engine::plan::{Action, Plan};
use prov_engine::refs::Substituted;
use prov_state::ResourceRecord;
use serde_json::json;

fn actions(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .filter(|c| !c.action.is_noop())
        .map(|c| (c.address.to_string(), c.action.clone()))
        .collect()
}

fn one_server(extra: &str) -> String {
    format!(
        r#"{{ servers = {{ web = {{ provider = "fake", plan = "small", zone = "a"{extra} }} }} }}"#
    )
}

#[test]
fn nothing_to_do_after_an_apply() {
    let w = world(&servers(6, true));
    assert!(w.apply().unwrap().ok());
    let plan = w.plan().unwrap();
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));
    assert_eq!(plan.changes.len(), 6);
}

#[test]
fn a_replace_on_change_attribute_replaces_and_others_update() {
    let w = world(&one_server(r#", tags = { env = "dev" }"#));
    assert!(w.apply().unwrap().ok());

    w.write(&one_server(r#", tags = { env = "prod" }"#));
    let plan = w.plan().unwrap();
    assert_eq!(actions(&plan), [("server.web".to_string(), Action::Update)]);
    let diffs: Vec<&str> = plan.changes[0]
        .diffs
        .iter()
        .map(|d| d.path.as_str())
        .collect();
    assert_eq!(diffs, ["tags.env"]);

    w.write(&one_server(r#", zone = "b", tags = { env = "dev" }"#).replace(r#"zone = "a", "#, ""));
    let plan = w.plan().unwrap();
    match &actions(&plan)[..] {
        [(
            a,
            Action::Replace {
                reason,
                create_before_destroy: false,
            },
        )] => {
            assert_eq!(a, "server.web");
            assert!(reason.contains("zone"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn ignored_changes_are_neither_planned_nor_applied() {
    let w = world(&one_server(
        r#", tags = { env = "dev" }, lifecycle = { ignore_changes = ["tags"] }"#,
    ));
    assert!(w.apply().unwrap().ok());
    w.write(&one_server(
        r#", tags = { env = "prod" }, lifecycle = { ignore_changes = ["tags"] }"#,
    ));
    assert!(actions(&w.plan().unwrap()).is_empty());
}

#[test]
fn prevent_destroy_refuses_the_plan_naming_the_resource() {
    let w = world(&one_server(", lifecycle = { prevent_destroy = true }"));
    assert!(w.apply().unwrap().ok());
    w.write("{ servers = {} }");
    let err = w.plan().unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err}");
    assert!(err.to_string().contains("server.web"), "{err}");
    assert_eq!(w.provider.servers().len(), 1);
}

#[test]
fn targets_plan_the_target_and_what_it_needs_only() {
    let w = world(&servers(4, true));
    let opts = PlanOptions {
        targets: vec!["server.s1".parse().unwrap()],
        ..PlanOptions::default()
    };
    let plan = w.plan_with(&opts).unwrap();
    let planned: Vec<String> = actions(&plan).into_iter().map(|(a, _)| a).collect();
    assert_eq!(planned, ["server.s0", "server.s1"]);
}

#[test]
fn drift_found_by_refresh_is_planned_back() {
    let w = world(&one_server(r#", tags = { env = "dev" }"#));
    assert!(w.apply().unwrap().ok());
    let id = w.provider.servers().into_keys().next().unwrap();
    w.provider.edit(&id, |s| {
        s.tags.insert("env".into(), "hacked".into());
    });
    let plan = w.plan().unwrap();
    assert_eq!(actions(&plan), [("server.web".to_string(), Action::Update)]);
    assert!(!plan.drift.is_empty());
    assert!(w.apply().unwrap().ok());
    let s = &w.provider.servers()[&id];
    assert_eq!(s.tags.get("env").map(String::as_str), Some("dev"));

    // Deleted outside prov: planned as a create again.
    w.provider.remove(&id);
    let plan = w.plan().unwrap();
    assert_eq!(actions(&plan), [("server.web".to_string(), Action::Create)]);
}

/// One row of the `decide` table: a record (as refresh left it) and a desired value in, the
/// action and the diffed paths out.
struct Case {
    name: &'static str,
    /// The recorded attributes; None: never applied, or deleted outside prov.
    recorded: Option<serde_json::Value>,
    recorded_implementation: &'static str,
    desired: serde_json::Value,
    /// The `after_unknown` mirror of `desired` (`{}`: fully known).
    unknown: serde_json::Value,
    lifecycle: Lifecycle,
    replace_requested: bool,
    placement_replaced: Option<&'static str>,
    action: Action,
    /// Each diff's path and whether it forces replacement.
    diffs: Vec<(&'static str, bool)>,
    /// Attributes `after_unknown` marks unknown (those the provider computes, on a new object).
    unknown_after: Vec<&'static str>,
}

fn case(name: &'static str) -> Case {
    Case {
        name,
        recorded: Some(json!({"plan": "small", "zone": "a", "tags": {"env": "dev"}})),
        recorded_implementation: "fake",
        desired: json!({"plan": "small", "zone": "a", "tags": {"env": "dev"}}),
        unknown: json!({}),
        lifecycle: Lifecycle::default(),
        replace_requested: false,
        placement_replaced: None,
        action: Action::NoOp,
        diffs: Vec::new(),
        unknown_after: Vec::new(),
    }
}

fn replace(reason: &str, create_before_destroy: bool) -> Action {
    Action::Replace {
        reason: reason.into(),
        create_before_destroy,
    }
}

#[test]
fn decide_table() {
    let prod = json!({"plan": "small", "zone": "a", "tags": {"env": "prod"}});
    let zone_b = json!({"plan": "small", "zone": "b", "tags": {"env": "dev"}});
    let computed = vec!["id", "public_ip", "private_ip"];
    let cases = [
        Case {
            recorded: None,
            action: Action::Create,
            unknown_after: computed.clone(),
            ..case("create: nothing recorded")
        },
        case("no-op: desired is what is recorded"),
        Case {
            desired: prod.clone(),
            action: Action::Update,
            diffs: vec![("tags.env", false)],
            ..case("update in place: a tag changes")
        },
        Case {
            desired: zone_b.clone(),
            action: replace("zone forces replacement", false),
            diffs: vec![("zone", true)],
            unknown_after: computed.clone(),
            ..case("replace: a force-new attribute changes")
        },
        Case {
            desired: zone_b.clone(),
            lifecycle: Lifecycle {
                create_before_destroy: true,
                ..Lifecycle::default()
            },
            action: replace("zone forces replacement", true),
            diffs: vec![("zone", true)],
            unknown_after: computed.clone(),
            ..case("create_before_destroy: the replacement is created first")
        },
        Case {
            desired: prod.clone(),
            lifecycle: Lifecycle {
                ignore_changes: vec!["tags".into()],
                ..Lifecycle::default()
            },
            ..case("ignore_changes: an ignored difference is no change")
        },
        Case {
            desired: json!({"plan": "large", "zone": "a", "tags": {"env": "prod"}}),
            lifecycle: Lifecycle {
                ignore_changes: vec!["tags.env".into()],
                ..Lifecycle::default()
            },
            action: Action::Update,
            diffs: vec![("plan", false)],
            ..case("ignore_changes: only the ignored path is left out")
        },
        Case {
            replace_requested: true,
            action: replace("requested with --replace", false),
            unknown_after: computed.clone(),
            ..case("--replace: an unchanged resource is replaced")
        },
        Case {
            recorded_implementation: "other",
            action: replace("implementation changes from \"other\" to \"fake\"", false),
            unknown_after: computed.clone(),
            ..case("a new implementation replaces")
        },
        Case {
            placement_replaced: Some("server.web"),
            action: replace("server.web is replaced", false),
            unknown_after: computed.clone(),
            ..case("placement: what it runs on is replaced")
        },
        Case {
            desired: zone_b.clone(),
            replace_requested: true,
            action: replace("requested with --replace", false),
            diffs: vec![("zone", true)],
            unknown_after: computed.clone(),
            ..case("the first reason to replace is the one shown")
        },
        Case {
            desired: json!({"plan": "small", "zone": "a", "tags": {"env": null}}),
            unknown: json!({"tags": {"env": true}}),
            action: Action::Update,
            diffs: vec![("tags.env", false)],
            unknown_after: vec!["tags"],
            ..case("a reference to a recreated resource is known only after apply")
        },
        Case {
            recorded: None,
            desired: json!({"plan": "small", "zone": "a", "id": "fixed"}),
            action: Action::Create,
            unknown_after: vec!["public_ip", "private_ip"],
            ..case("deleted outside prov: created again; what it sets itself stays known")
        },
    ];
    for c in cases {
        let record = c.recorded.clone().map(|attributes| ResourceRecord {
            implementation: c.recorded_implementation.into(),
            attributes,
            ..ResourceRecord::default()
        });
        let placement: Option<Address> = c.placement_replaced.map(|p| p.parse().unwrap());
        let facts = Facts {
            implementation: "fake",
            lifecycle: &c.lifecycle,
            record: record.as_ref(),
            replace_requested: c.replace_requested,
            placement_replaced: placement.as_ref(),
            force_new: &["zone", "os"],
            computed: &["id", "public_ip", "private_ip"],
        };
        let desired = Substituted {
            value: c.desired.clone(),
            unknown: c.unknown.clone(),
        };
        let d = decide(&facts, desired);
        assert_eq!(d.action, c.action, "{}", c.name);
        let diffs: Vec<(&str, bool)> = d
            .diffs
            .iter()
            .map(|x| (x.path.as_str(), x.forces_replacement))
            .collect();
        assert_eq!(diffs, c.diffs, "{}", c.name);
        let mut unknown: Vec<&str> = d
            .after_unknown
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        unknown.sort();
        let mut expected = c.unknown_after.clone();
        expected.sort();
        assert_eq!(unknown, expected, "{}", c.name);
        // What the provider will compute is a null placeholder until then.
        for k in &c.unknown_after {
            if c.desired.get(*k).is_none() {
                assert_eq!(d.after[*k], serde_json::Value::Null, "{}", c.name);
            }
        }
        // Ignored paths keep their recorded values in what apply sends.
        for path in &c.lifecycle.ignore_changes {
            let parts: Vec<&str> = path.split('.').collect();
            let at =
                |v: &serde_json::Value| parts.iter().try_fold(v.clone(), |v, k| v.get(k).cloned());
            assert_eq!(at(&d.after), at(c.recorded.as_ref().unwrap()), "{}", c.name);
        }
    }
}

/// A plan of 2,048 resources or more recognises the unchanged ones on both cores first; it
/// decides as planning in dependency order does: a replaced server's dependent is updated
/// (what it refers to is unknown until the new server exists), everything else is a no-op.
#[test]
fn a_large_plan_presumes_unchanged_only_what_refers_to_unchanged_resources() {
    let n = 2500;
    let chained = servers(n, true);
    let w = world(&chained);
    assert!(w.apply().unwrap().ok());
    let plan = w.plan().unwrap();
    assert!(actions(&plan).is_empty(), "{:?}", actions(&plan));
    assert_eq!(plan.changes.len(), n);
    // s1200 moves to another zone (replace on change); s1201 refers to its private_ip.
    let from = "s1200 = { provider = \"fake\",";
    assert!(chained.contains(from));
    w.write(&chained.replacen(from, "s1200 = { provider = \"fake\", zone = \"b\",", 1));
    let plan = w.plan().unwrap();
    let acts = actions(&plan);
    assert_eq!(acts.len(), 2, "{acts:?}");
    assert_eq!(acts[0].0, "server.s1200");
    assert!(matches!(acts[0].1, Action::Replace { .. }), "{acts:?}");
    assert_eq!(acts[1], ("server.s1201".to_string(), Action::Update));
    assert_eq!(plan.changes.len(), n);
}
