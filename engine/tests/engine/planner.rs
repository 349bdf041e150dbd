//! The planner against the fakes: nothing to do after an apply, replace vs update by attribute, ignore_changes, prevent_destroy, targets, and drift found by refresh planned back.

use super::{servers, world};
use prov_engine::error::EngineError;
use prov_engine::plan::make::PlanOptions;
use prov_engine::plan::{Action, Plan};

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
