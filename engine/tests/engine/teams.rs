//! Many writers on one state (issue 18) at the engine's level: disjoint applies run at once, an overlapping one fails at once naming the holder and the addresses, and a plan is stale only when a resource it touches changed.

use super::world;
use prov_engine::apply::ApplyOptions;
use prov_engine::concurrency::touched;
use prov_engine::error::EngineError;
use prov_engine::plan::make::PlanOptions;
use prov_engine::plan::Plan;
use prov_engine::testing::World;
use prov_state::{LockScope, StateError, StateStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn two_servers(a: &str, b: &str) -> String {
    format!(
        r#"{{ servers = {{
  a = {{ provider = "fake", plan = "small", zone = "z", tags = {{ v = "{a}" }} }},
  b = {{ provider = "fake", plan = "small", zone = "z", tags = {{ v = "{b}" }} }},
}} }}"#
    )
}

fn targeted(w: &World, target: &str) -> Plan {
    w.plan_with(&PlanOptions {
        targets: vec![target.parse().unwrap()],
        ..PlanOptions::default()
    })
    .unwrap()
}

/// A second writer of the world's state, as a concurrent `prov apply` opens it.
fn writer(w: &World) -> Arc<dyn StateStore> {
    Arc::new(w.store.reopen("apply", LockScope::Resources))
}

#[test]
fn disjoint_applies_run_at_the_same_time() {
    let w = world(&two_servers("1", "1"));
    assert!(w.apply().unwrap().ok());
    w.write(&two_servers("2", "2"));
    let (pa, pb) = (targeted(&w, "server.a"), targeted(&w, "server.b"));
    assert_eq!(touched(&pa).into_iter().collect::<Vec<_>>(), ["server.a"]);
    assert_eq!(touched(&pb).into_iter().collect::<Vec<_>>(), ["server.b"]);
    w.calls.clear();
    w.calls.set_latency(Duration::from_millis(300));
    let reports = std::thread::scope(|s| {
        let ha = s.spawn(|| w.apply_plan_on(writer(&w), &pa, &ApplyOptions::default()));
        let hb = s.spawn(|| w.apply_plan_on(writer(&w), &pb, &ApplyOptions::default()));
        [ha.join().unwrap(), hb.join().unwrap()]
    });
    for r in reports {
        let r = r.unwrap();
        assert!(r.ok(), "{:?}", r.failed);
    }
    // Both updates were in flight at once: neither waited for the other's lock.
    assert_eq!(w.calls.max_in_flight(), 2, "{:?}", w.calls.log());
    let tags: Vec<String> = w
        .provider
        .servers()
        .values()
        .map(|s| s.tags["v"].clone())
        .collect();
    assert_eq!(tags, ["2", "2"]);
}

#[test]
fn an_overlapping_apply_fails_at_once_naming_the_holder_and_the_addresses() {
    let w = world(&two_servers("1", "1"));
    assert!(w.apply().unwrap().ok());
    w.write(&two_servers("2", "1"));
    let first = targeted(&w, "server.a");
    w.write(&two_servers("3", "1"));
    let second = targeted(&w, "server.a");

    // The first apply stops inside its update of `a` until the second has tried.
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let once = AtomicBool::new(false);
    w.calls.on_call(move |call| {
        if call == "update-server a" && !once.swap(true, Ordering::SeqCst) {
            let _ = started_tx.send(());
            let _ = go_rx.lock().unwrap().recv_timeout(Duration::from_secs(30));
        }
    });
    std::thread::scope(|s| {
        let h = s.spawn(|| w.apply_plan_on(writer(&w), &first, &ApplyOptions::default()));
        started_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        let err = w
            .apply_plan_on(writer(&w), &second, &ApplyOptions::default())
            .unwrap_err();
        match &err {
            EngineError::State(StateError::ResourcesLocked { addresses, .. }) => {
                assert_eq!(addresses, &["server.a".to_string()]);
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().contains("server.a"), "{err}");
        go_tx.send(()).unwrap();
        let r = h.join().unwrap().unwrap();
        assert!(r.ok(), "{:?}", r.failed);
    });
    // The refused apply changed nothing: `a` carries the first plan's value.
    let a = w
        .provider
        .servers()
        .into_values()
        .find(|s| s.hostname == "a")
        .unwrap();
    assert_eq!(a.tags["v"], "2");
}

#[test]
fn a_plan_is_stale_only_when_a_resource_it_touches_changed() {
    let w = world(&two_servers("1", "1"));
    assert!(w.apply().unwrap().ok());
    w.write(&two_servers("2", "2"));
    let (pa, pb) = (targeted(&w, "server.a"), targeted(&w, "server.b"));
    w.write(&two_servers("3", "2"));
    let pa_again = targeted(&w, "server.a");

    // b's apply moves the serial; a's plan does not touch b, so it stays current.
    assert!(w
        .apply_plan_on(writer(&w), &pb, &ApplyOptions::default())
        .unwrap()
        .ok());
    assert!(w
        .apply_plan_on(writer(&w), &pa, &ApplyOptions::default())
        .unwrap()
        .ok());
    // A second plan for `a`, made before `a` was written, is stale and names it.
    let err = w
        .apply_plan_on(writer(&w), &pa_again, &ApplyOptions::default())
        .unwrap_err();
    match &err {
        EngineError::StalePlan { changed, .. } => assert_eq!(changed, &["server.a".to_string()]),
        other => panic!("{other}"),
    }
}
