//! The apply walker against the fakes: dependency order both ways, each step in the state before its dependents start, failures skip dependents only, the parallelism bound, create_before_destroy and interruption.

use super::{servers, world};
use prov_engine::apply::ApplyOptions;
use prov_engine::events::Step;
use prov_engine::model::Address;
use prov_state::StateRead;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn addr(s: &str) -> Address {
    s.parse().unwrap()
}

#[test]
fn creates_follow_references_and_each_is_recorded_before_its_dependents_start() {
    let w = world(&servers(5, true));
    // As each create starts, the server it refers to must already be in the state.
    let store = w.store.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    w.calls.on_call(move |call| {
        let host = call.strip_prefix("create-server ").unwrap_or("");
        let snap = store.snapshot().unwrap();
        s.lock()
            .unwrap()
            .push((host.to_string(), snap.resources.len()));
    });
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.of("create-server"), ["s0", "s1", "s2", "s3", "s4"]);
    let seen = seen.lock().unwrap().clone();
    for (i, (host, records)) in seen.iter().enumerate() {
        assert_eq!(host, &format!("s{i}"));
        assert_eq!(
            *records, i,
            "{host} started with {records} records in the state"
        );
    }
    // The references were substituted from the recorded outputs.
    let servers = w.provider.servers();
    let s1 = servers.values().find(|s| s.hostname == "s1").unwrap();
    let s0 = servers.values().find(|s| s.hostname == "s0").unwrap();
    assert_eq!(s1.tags.get("prev"), s0.private_ip.as_ref());
}

#[test]
fn destroys_run_in_reverse_dependency_order() {
    let w = world(&servers(4, true));
    assert!(w.apply().unwrap().ok());
    w.calls.clear();
    w.write("{ servers = {} }");
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.of("delete-server"), ["s3", "s2", "s1", "s0"]);
    assert!(w.provider.servers().is_empty());
    assert!(w.store.snapshot().unwrap().resources.is_empty());
}

#[test]
fn a_failure_skips_its_dependents_and_the_rest_finish() {
    let w = world(
        r#"{
  providers = { fake = { defaults = { plan = "small", zone = "a" } } },
  servers = {
    a0 = { provider = "fake" },
    a1 = { provider = "fake", tags = { up = "${server.a0.private_ip}" } },
    b0 = { provider = "fake" },
  },
}"#,
    );
    w.calls.fail("create-server", "a0");
    let report = w.apply().unwrap();
    assert!(!report.ok());
    let failed: Vec<String> = report.failed.iter().map(|f| f.0.to_string()).collect();
    assert_eq!(failed, ["server.a0"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].0, addr("server.a1"));
    assert_eq!(report.skipped[0].2, addr("server.a0"));
    assert!(report
        .succeeded
        .contains(&(addr("server.b0"), Step::Create)));
    let snap = w.store.snapshot().unwrap();
    let recorded: Vec<&String> = snap.resources.keys().collect();
    assert_eq!(recorded, ["server.b0"]);
    // The failed create stays noted as pending: the next run asks the provider whether it
    // happened after all (it did not), clears the note and creates a0 and a1.
    let pending: Vec<&String> = snap.pending.keys().collect();
    assert_eq!(pending, ["server.a0"]);
    w.calls.heal();
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    let snap = w.store.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 3);
    assert!(snap.pending.is_empty(), "{:?}", snap.pending);
    assert_eq!(w.provider.servers().len(), 3);
}

#[test]
fn parallelism_bounds_the_steps_in_flight() {
    let w = world(&servers(12, false));
    w.calls.set_latency(Duration::from_millis(30));
    let plan = w.plan().unwrap();
    let opts = ApplyOptions {
        parallelism: 3,
        ..ApplyOptions::default()
    };
    let report = w.apply_plan(&plan, &opts).unwrap();
    assert!(report.ok());
    let max = w.calls.max_in_flight();
    assert!(
        (2..=3).contains(&max),
        "{max} calls at once with --parallelism 3"
    );
}

#[test]
fn create_before_destroy_creates_the_new_server_first() {
    let cfg = |zone: &str| {
        format!(
            r#"{{ servers = {{ web = {{ provider = "fake", plan = "small", zone = "{zone}", lifecycle = {{ create_before_destroy = true }} }} }} }}"#
        )
    };
    let w = world(&cfg("a"));
    assert!(w.apply().unwrap().ok());
    let old: Vec<String> = w.provider.servers().into_keys().collect();
    w.calls.clear();
    w.write(&cfg("b"));
    let plan = w.plan().unwrap();
    assert!(matches!(
        plan.changes[0].action,
        prov_engine::plan::Action::Replace {
            create_before_destroy: true,
            ..
        }
    ));
    let report = w.apply_plan(&plan, &ApplyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.log(), ["create-server web", "delete-server web"]);
    let now: Vec<String> = w.provider.servers().into_keys().collect();
    assert_eq!(now.len(), 1);
    assert_ne!(now, old);
    let rec = &w.store.snapshot().unwrap().resources["server.web"];
    assert_eq!(rec.provider_id.as_deref(), Some(now[0].as_str()));
    assert!(rec.deposed.is_empty(), "{:?}", rec.deposed);
}

#[test]
fn an_interrupted_apply_starts_nothing_more() {
    let w = world(&servers(3, true));
    let plan = w.plan().unwrap();
    let opts = ApplyOptions::default();
    opts.interrupt.store(true, Ordering::SeqCst);
    let report = w.apply_plan(&plan, &opts).unwrap();
    assert!(!report.ok());
    assert!(w.calls.log().is_empty(), "{:?}", w.calls.log());
    assert_eq!(report.interrupted.len(), 3);
    assert!(w.store.snapshot().unwrap().resources.is_empty());
}

#[test]
fn taskservs_install_after_their_server_and_go_before_it() {
    let with = r#"{
  servers = { db = { provider = "fake", plan = "small", zone = "a",
    taskservs = { redis = { implementation = "fake", version = "7" } } } },
}"#;
    let w = world(with);
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.log(), ["create-server db", "install redis@db"]);
    assert_eq!(
        w.taskserv.installed().get("redis@db"),
        Some(&Some("7".to_string()))
    );
    w.calls.clear();
    w.write("{ servers = {} }");
    assert!(w.apply().unwrap().ok());
    assert_eq!(w.calls.log(), ["uninstall redis@db", "delete-server db"]);
}
