//! The apply walker against the fakes: dependency order both ways, each step in the state before its dependents start (by the state at each call and by the event order), failures skip every dependent and record none of them, on_error Continue releases them, the parallelism bound, create_before_destroy, interruption (before and mid-walk) and a state write failing mid-walk.

use super::{servers, world};
use prov_engine::apply::ApplyOptions;
use prov_engine::events::{Event, Step};
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

/// With one slot, steps start in the plan's order, every time (the slot is taken before a
/// step's task exists, so tasks do not race for it): applies, and what they assign in order
/// (addresses, ids), are the same from run to run.
#[test]
fn one_slot_starts_steps_in_the_plans_order() {
    for _ in 0..5 {
        let w = world(&servers(8, false));
        let plan = w.plan().unwrap();
        let planned: Vec<String> = plan.changes.iter().map(|c| c.address.to_string()).collect();
        let opts = ApplyOptions {
            parallelism: 1,
            ..ApplyOptions::default()
        };
        assert!(w.apply_plan(&plan, &opts).unwrap().ok());
        let created: Vec<String> = w
            .calls
            .of("create-server")
            .into_iter()
            .map(|t| format!("server.{t}"))
            .collect();
        assert_eq!(created, planned);
        assert_eq!(w.calls.max_in_flight(), 1);
    }
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

/// The position of the first event in `events` that `pick` accepts after position `from`.
fn position(events: &[Event], from: usize, what: &str, pick: impl Fn(&Event) -> bool) -> usize {
    events[from..]
        .iter()
        .position(pick)
        .map(|p| from + p)
        .unwrap_or_else(|| panic!("no {what} after event {from}: {events:?}"))
}

fn is_step(e: &Event, kind: &str, host: &str) -> bool {
    let a = addr(&format!("server.{host}"));
    match e {
        Event::Running { address, .. } => kind == "running" && *address == a,
        Event::Succeeded { address, .. } => kind == "succeeded" && *address == a,
        Event::Failed { address, .. } => kind == "failed" && *address == a,
        Event::Skipped { address, .. } => kind == "skipped" && *address == a,
        Event::Interrupted { address, .. } => kind == "interrupted" && *address == a,
        _ => false,
    }
}

#[test]
fn a_dependent_starts_only_after_the_commit_that_records_what_it_depends_on() {
    let w = world(&servers(3, true));
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    let events = w.events.lock().unwrap().clone();
    // s_i runs, its record is committed, it is reported done, and only then s_i+1 runs.
    let mut at = 0;
    let mut serial = 0;
    for i in 0..3 {
        let host = format!("s{i}");
        let running = position(&events, at, "running", |e| is_step(e, "running", &host));
        let written = position(&events, running, "state write", |e| {
            matches!(e, Event::StateWritten { records: 1, .. })
        });
        let Event::StateWritten { serial: s, .. } = events[written] else {
            unreachable!()
        };
        assert!(s > serial, "each step is its own commit: {events:?}");
        serial = s;
        let done = position(&events, written, "success", |e| {
            is_step(e, "succeeded", &host)
        });
        if i < 2 {
            let next = format!("s{}", i + 1);
            let next_running = events
                .iter()
                .position(|e| is_step(e, "running", &next))
                .unwrap();
            assert!(
                next_running > done,
                "{next} ran before {host} was recorded: {events:?}"
            );
        }
        at = done;
    }
    assert_eq!(report.serial, w.store.snapshot().unwrap().meta.serial);
}

#[test]
fn every_step_after_a_failure_is_skipped_transitively_and_nothing_of_them_recorded() {
    let w = world(&servers(4, true));
    w.calls.fail("create-server", "s1");
    let report = w.apply().unwrap();
    assert_eq!(report.succeeded, [(addr("server.s0"), Step::Create)]);
    let failed: Vec<(Address, Step)> = report.failed.iter().map(|f| (f.0.clone(), f.1)).collect();
    assert_eq!(failed, [(addr("server.s1"), Step::Create)]);
    // s3 depends on s1 only through s2: both are skipped because of s1, and never called.
    assert_eq!(
        report.skipped,
        [
            (addr("server.s2"), Step::Create, addr("server.s1")),
            (addr("server.s3"), Step::Create, addr("server.s1")),
        ]
    );
    assert!(report.interrupted.is_empty(), "{:?}", report.interrupted);
    assert_eq!(w.calls.of("create-server"), ["s0", "s1"]);
    let snap = w.store.snapshot().unwrap();
    let recorded: Vec<&String> = snap.resources.keys().collect();
    assert_eq!(recorded, ["server.s0"]);
    // The failed server create keeps its note (it may have left a server behind); the
    // skipped steps never noted anything.
    let pending: Vec<&String> = snap.pending.keys().collect();
    assert_eq!(pending, ["server.s1"]);
    // The failure is reported, then its dependents as skipped, and neither of them runs.
    let events = w.events.lock().unwrap().clone();
    let failed_at = position(&events, 0, "failure", |e| is_step(e, "failed", "s1"));
    let s2 = position(&events, failed_at, "skip", |e| is_step(e, "skipped", "s2"));
    position(&events, s2, "skip", |e| is_step(e, "skipped", "s3"));
    assert!(!events
        .iter()
        .any(|e| is_step(e, "running", "s2") || is_step(e, "running", "s3")));
    assert!(matches!(
        events.last(),
        Some(Event::ApplyFinished {
            succeeded: 1,
            failed: 1,
            skipped: 2
        })
    ));
}

#[test]
fn an_interrupt_mid_walk_lets_the_running_step_finish_and_starts_nothing_more() {
    let w = world(&servers(4, true));
    let plan = w.plan().unwrap();
    let opts = ApplyOptions::default();
    // The interrupt arrives while s1 is being created.
    let interrupt = opts.interrupt.clone();
    w.calls.on_call(move |call| {
        if call == "create-server s1" {
            interrupt.store(true, Ordering::SeqCst);
        }
    });
    let report = w.apply_plan(&plan, &opts).unwrap();
    assert!(!report.ok());
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    assert_eq!(
        report.succeeded,
        [
            (addr("server.s0"), Step::Create),
            (addr("server.s1"), Step::Create)
        ]
    );
    assert_eq!(
        report.interrupted,
        [
            (addr("server.s2"), Step::Create),
            (addr("server.s3"), Step::Create)
        ]
    );
    assert_eq!(w.calls.of("create-server"), ["s0", "s1"]);
    // What finished is recorded, its note cleared; what never started left no note.
    let snap = w.store.snapshot().unwrap();
    let recorded: Vec<&String> = snap.resources.keys().collect();
    assert_eq!(recorded, ["server.s0", "server.s1"]);
    assert!(snap.pending.is_empty(), "{:?}", snap.pending);
    let events = w.events.lock().unwrap().clone();
    let done = position(&events, 0, "success", |e| is_step(e, "succeeded", "s1"));
    let s2 = position(&events, done, "interrupt", |e| {
        is_step(e, "interrupted", "s2")
    });
    position(&events, s2, "interrupt", |e| {
        is_step(e, "interrupted", "s3")
    });
    // The next apply carries out the rest.
    w.calls.on_call(|_| {});
    w.calls.clear();
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.of("create-server"), ["s2", "s3"]);
    assert_eq!(w.store.snapshot().unwrap().resources.len(), 4);
}

#[test]
fn a_taskserv_failure_with_on_error_continue_releases_its_dependents_and_a_plain_one_does_not() {
    let w = world(
        r#"{
  servers = { db = { provider = "fake", plan = "small", zone = "a",
    taskservs = {
      flaky = { implementation = "fake", on_error = 'Continue },
      app = { implementation = "fake", depends_on = ["flaky"] },
      strict = { implementation = "fake" },
      after_strict = { implementation = "fake", depends_on = ["strict"] },
    } } },
}"#,
    );
    w.calls.fail("install", "flaky@db");
    w.calls.fail("install", "strict@db");
    let report = w.apply().unwrap();
    let mut failed: Vec<(String, String)> = report
        .failed
        .iter()
        .map(|(a, _, e)| (a.to_string(), e.clone()))
        .collect();
    failed.sort();
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(failed[0].0, "taskserv.db.flaky");
    assert!(
        failed[0]
            .1
            .ends_with("(on_error = Continue: dependents still run)"),
        "{failed:?}"
    );
    assert_eq!(failed[1].0, "taskserv.db.strict");
    assert!(!failed[1].1.contains("on_error"), "{failed:?}");
    assert_eq!(
        report.skipped,
        [(
            addr("taskserv.db.after_strict"),
            Step::Create,
            addr("taskserv.db.strict")
        )]
    );
    assert!(w.calls.log().contains(&"install app@db".to_string()));
    assert!(!w.calls.log().iter().any(|c| c.contains("after_strict")));
    let snap = w.store.snapshot().unwrap();
    let recorded: Vec<&String> = snap.resources.keys().collect();
    assert_eq!(recorded, ["server.db", "taskserv.db.app"]);
    // A failed install is known not to have happened: its note is cleared.
    assert!(snap.pending.is_empty(), "{:?}", snap.pending);
}

/// A state write that fails mid-walk (the record of the second of five chained creates): the
/// walk starts nothing more, the apply reports the failure as its error and the step whose
/// record was lost as failed, and the state holds exactly what was committed before it — the
/// first server's record and the second's pending note (nothing lost: the next apply adopts the
/// server the failed write did not record; nothing half-written: no record of it, none of the
/// rest).
#[test]
fn a_state_write_failing_mid_walk_stops_it_and_loses_nothing() {
    // Commits of a walk one step at a time: s0's pending note, then each step's record with
    // the next step's note (s0 + s1's note, then s1 + s2's note: the third fails).
    let (w, store, applied) = chain_of_five_one_at_a_time(3);
    let err = applied.unwrap_err();
    assert!(
        err.to_string().contains("commit 3 failed (injected)"),
        "{err}"
    );
    assert_eq!(store.commits(), 3, "nothing written after the failure");
    assert_eq!(
        w.calls.of("create-server"),
        ["s0", "s1"],
        "s2 never started"
    );

    let events = w.events.lock().unwrap().clone();
    let failed: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { address, error, .. } => Some((address.to_string(), error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [(
            "server.s1".to_string(),
            "finished, but the state could not be written".to_string()
        )]
    );
    assert!(!events.iter().any(|e| matches!(e,
        Event::Running { address, .. } if *address == addr("server.s2"))));

    let snap = w.store.snapshot().unwrap();
    assert_eq!(snap.resources.keys().collect::<Vec<_>>(), ["server.s0"]);
    let s0 = w.provider.servers();
    let s0_id = s0.iter().find(|(_, s)| s.hostname == "s0").unwrap().0;
    assert_eq!(
        snap.resources["server.s0"].provider_id.as_deref(),
        Some(s0_id.as_str())
    );
    assert_eq!(snap.pending.keys().collect::<Vec<_>>(), ["server.s1"]);

    // The next apply adopts s1 (created, never recorded) instead of creating it again.
    w.calls.clear();
    let report = w.apply().unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(w.calls.of("create-server"), ["s2", "s3", "s4"]);
    let snap = w.store.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 5);
    assert!(snap.pending.is_empty());
    assert_eq!(w.provider.servers().len(), 5);
}

/// A write failing while other steps finish behind it (the commit is slow, so their rounds queue
/// up): none of the queued rounds is written either, every step they would have recorded is a
/// failure, and nothing they released starts — four chains of two, the second commit failing.
#[test]
fn rounds_queued_behind_a_failed_write_are_not_written() {
    use prov_state::StateStore;
    let mut cfg = String::from("{\n  providers = { fake = { defaults = { plan = \"small\", zone = \"a\" } } },\n  servers = {\n");
    for c in ["a", "b", "c", "d"] {
        cfg.push_str(&format!("    {c}0 = {{ provider = \"fake\" }},\n"));
        cfg.push_str(&format!(
            "    {c}1 = {{ provider = \"fake\", tags = {{ prev = \"${{server.{c}0.private_ip}}\" }} }},\n"
        ));
    }
    cfg.push_str("  },\n}\n");
    let w = world(&cfg);
    let plan = w.plan().unwrap();
    // d0 finishes 50 ms after the others, while the round recording them is being written.
    w.calls.on_call(|call| {
        if call == "create-server d0" {
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let store = Arc::new(
        prov_engine::testing::FailingStore::new(w.store.clone(), 2)
            .slow(Duration::from_millis(100)),
    );
    let opts = ApplyOptions {
        parallelism: 4,
        ..ApplyOptions::default()
    };
    let applied = w.apply_plan_on(store.clone() as Arc<dyn StateStore>, &plan, &opts);
    assert!(applied.is_err(), "the failed write is the apply's error");
    assert_eq!(store.commits(), 2, "nothing tried after the failure");
    let mut created = w.calls.of("create-server");
    created.sort();
    assert_eq!(created, ["a0", "b0", "c0", "d0"], "no second link started");
    let events = w.events.lock().unwrap().clone();
    let mut failed: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::Failed { address, error, .. } => {
                assert_eq!(error, "finished, but the state could not be written");
                Some(address.to_string())
            }
            _ => None,
        })
        .collect();
    failed.sort();
    assert_eq!(failed, ["server.a0", "server.b0", "server.c0", "server.d0"]);
    assert!(!events.iter().any(|e| matches!(e, Event::Succeeded { .. })));
    // The state holds the first commit only: the four notes, which the next run resolves.
    let snap = w.store.snapshot().unwrap();
    assert!(snap.resources.is_empty());
    assert_eq!(snap.pending.len(), 4);
}

/// The critical path pays one commit per dependency level: the commit that records a step also
/// notes the steps it released as pending (both before those start). A chain of five, one at a
/// time: the first step's note, then five commits each recording one step — six, not ten.
#[test]
fn each_round_records_what_finished_and_notes_what_starts_in_one_commit() {
    let (w, store, applied) = chain_of_five_one_at_a_time(usize::MAX);
    let report = applied.unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(store.commits(), 6);
    let snap = w.store.snapshot().unwrap();
    assert_eq!(snap.resources.len(), 5);
    assert!(snap.pending.is_empty(), "{:?}", snap.pending);
}

/// Five chained creates applied one at a time through a store whose `fail_at`th commit fails:
/// the world, that store (it counts the commits) and the apply's outcome.
fn chain_of_five_one_at_a_time(
    fail_at: usize,
) -> (
    prov_engine::testing::World,
    Arc<prov_engine::testing::FailingStore>,
    Result<prov_engine::apply::ApplyReport, prov_engine::error::EngineError>,
) {
    use prov_state::StateStore;
    let w = world(&servers(5, true));
    let plan = w.plan().unwrap();
    let store = Arc::new(prov_engine::testing::FailingStore::new(
        w.store.clone(),
        fail_at,
    ));
    let opts = ApplyOptions {
        parallelism: 1,
        ..ApplyOptions::default()
    };
    let applied = w.apply_plan_on(store.clone() as Arc<dyn StateStore>, &plan, &opts);
    (w, store, applied)
}

/// A walk of more steps than it reads records for one by one (4,096) takes them from one
/// snapshot without configurations; a record it writes back as it stands (a new protection, a
/// record forgetting a deposed object) is read again whole, so its configuration survives.
#[test]
fn a_large_walk_writes_back_whole_records() {
    use prov_state::StateWrite;
    let n = 4200;
    let config = |rev: &str, protect_s1: bool| {
        let mut s = String::from("{\n  providers = { fake = { defaults = { plan = \"small\", zone = \"a\" } } },\n  servers = {\n");
        for i in 0..n {
            // s0 and s1 stay as they are: only the walk's write-backs touch their records.
            let rev = if i < 2 { "1" } else { rev };
            let lifecycle = if i == 1 && protect_s1 {
                ", lifecycle = { prevent_destroy = true }"
            } else {
                ""
            };
            s.push_str(&format!(
                "    s{i} = {{ provider = \"fake\", tags = {{ rev = \"{rev}\" }}{lifecycle} }},\n"
            ));
        }
        s + "  },\n}\n"
    };
    let w = world(&config("1", false));
    assert!(w.apply().unwrap().ok());
    // s0 keeps an object an earlier replace deposed (its delete had failed).
    let mut s0 = w.store.record("server.s0").unwrap().unwrap();
    s0.deposed.push(prov_state::Deposed {
        provider_id: "gone-already".into(),
        attributes: s0.attributes.clone(),
        outputs: s0.outputs.clone(),
        since: 1,
    });
    w.store
        .commit(&[prov_state::Change::Put(s0.clone())])
        .unwrap();
    let configs = |w: &prov_engine::testing::World| {
        ["server.s0", "server.s1"].map(|a| w.store.record(a).unwrap().unwrap().config)
    };
    let before = configs(&w);
    assert!(before.iter().all(|c| c.is_object()), "{before:?}");

    w.write(&config("2", true));
    let plan = w.plan().unwrap();
    assert_eq!(plan.protect, [addr("server.s1")]);
    assert_eq!(plan.deposed.len(), 1);
    let report = w.apply_plan(&plan, &ApplyOptions::default()).unwrap();
    assert!(report.ok(), "{:?}", report.failed);
    assert_eq!(report.succeeded.len(), n - 2 + 1);

    assert_eq!(configs(&w), before, "configurations written back are whole");
    let (s0, s1) = (
        w.store.record("server.s0").unwrap().unwrap(),
        w.store.record("server.s1").unwrap().unwrap(),
    );
    assert!(s0.deposed.is_empty(), "{:?}", s0.deposed);
    assert!(s1.protected);
}
