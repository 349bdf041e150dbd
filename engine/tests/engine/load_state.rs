//! `workspace::load_with_state`: the state read while the configuration evaluates (`early`),
//! and only when the configuration cannot name another backend; what the caller starts from the
//! snapshot before the model (`ops::start_plan`), and that a plan so started is the plan made
//! after loading.

use super::*;
use prov_engine::config::EvalOptions;
use prov_engine::error::EngineError;
use prov_engine::testing::Opened;
use prov_engine::workspace;
use prov_state::StateRead;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Loads `w` with `early`, returning what `open` was asked for each time and the outcome.
fn load(
    w: &prov_engine::testing::World,
    early: bool,
) -> (Vec<serde_json::Value>, Result<usize, EngineError>) {
    let asked = Mutex::new(Vec::new());
    let opens = AtomicUsize::new(0);
    let eval = EvalOptions {
        cache: false,
        ..EvalOptions::default()
    };
    let r = workspace::load_with_state(
        &w.workspace,
        &w.registry,
        &eval,
        early,
        |backend| {
            opens.fetch_add(1, Ordering::SeqCst);
            asked.lock().unwrap().push(backend.clone());
            Ok(Opened(w.store.clone()))
        },
        |_, _, snapshot| Ok(snapshot),
    )
    .map(|l| l.loaded.model.resources.len());
    (asked.into_inner().unwrap(), r)
}

#[test]
fn early_reads_the_default_backend_once_and_loads_the_same() {
    let w = world(&servers(3, true));
    let (asked, early) = load(&w, true);
    assert_eq!(early.unwrap(), 3);
    assert_eq!(asked, [serde_json::json!({"backend": {"type": "sled"}})]);
    let (asked_late, late) = load(&w, false);
    assert_eq!(late.unwrap(), 3);
    assert_eq!(asked_late, asked, "the same backend either way");
}

#[test]
fn a_configuration_naming_its_backend_is_evaluated_before_the_state_is_opened() {
    let w = world(&servers(2, false).replacen(
        "{\n",
        "{\n  backend = { type = \"pg\", conn = \"postgres://nowhere\" },\n",
        1,
    ));
    let (asked, r) = load(&w, true);
    assert_eq!(r.unwrap(), 2);
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0]["backend"]["type"], "pg");
}

#[test]
fn a_configuration_error_wins_over_the_early_read() {
    let w = world("{ servers = { a = { plan = 1 } } }");
    let (_, r) = load(&w, true);
    let e = r.unwrap_err();
    assert!(
        matches!(e, EngineError::Config(_) | EngineError::Invalid(_)),
        "{e:?}"
    );
}

#[test]
fn a_configuration_error_wins_over_a_failing_start_and_a_start_error_is_reported() {
    let eval = EvalOptions {
        cache: false,
        ..EvalOptions::default()
    };
    let failing =
        |_: &Arc<prov_engine::registry::Bound>, _: &Opened, _| -> Result<(), EngineError> {
            Err(EngineError::Internal("start failed".into()))
        };
    for early in [true, false] {
        let bad = world("{ servers = { a = { plan = 1 } } }");
        let open = |_: &serde_json::Value| Ok(Opened(bad.store.clone()));
        let e =
            workspace::load_with_state(&bad.workspace, &bad.registry, &eval, early, open, failing)
                .err()
                .unwrap();
        assert!(
            matches!(e, EngineError::Config(_) | EngineError::Invalid(_)),
            "{e:?}"
        );

        let good = world(&servers(2, false));
        let open = |_: &serde_json::Value| Ok(Opened(good.store.clone()));
        let e = workspace::load_with_state(
            &good.workspace,
            &good.registry,
            &eval,
            early,
            open,
            failing,
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("start failed"), "{e}");
    }
}

#[test]
fn start_sees_the_snapshot_and_the_bound_providers_before_the_model() {
    let w = world(&servers(3, false));
    assert!(w.apply().unwrap().ok());
    let eval = EvalOptions {
        cache: false,
        ..EvalOptions::default()
    };
    for early in [true, false] {
        let started = workspace::load_with_state(
            &w.workspace,
            &w.registry,
            &eval,
            early,
            |_| Ok(Opened(w.store.clone())),
            |bound, _, snap| {
                let p = bound
                    .provider("fake")
                    .map_err(|e| EngineError::Internal(e.to_string()))?;
                Ok((snap.resources.len(), p.name().to_string()))
            },
        )
        .unwrap();
        assert_eq!(started.started, (3, "fake".to_string()));
        assert_eq!(started.loaded.model.resources.len(), 3);
    }
}

/// A plan whose providers were asked while the model was built (as `prov plan` makes it) is the
/// plan made after loading (as `prov apply` makes it): drift, a server deleted outside prov, a
/// pending create, a lost record whose server is found by its tags, a new server.
#[test]
fn a_plan_started_before_the_model_is_the_plan_made_after_it() {
    let w = world(&servers(5, true));
    assert!(w.apply().unwrap().ok());
    let ids: Vec<(String, String)> = w
        .provider
        .servers()
        .into_iter()
        .map(|(id, s)| (s.hostname.clone(), id))
        .collect();
    let id_of = |host: &str| ids.iter().find(|(h, _)| h == host).unwrap().1.clone();
    w.write(&servers(7, true));
    w.calls.fail("create-server", "s5");
    assert!(!w.apply().unwrap().ok());
    w.calls.heal();
    assert!(!w.store.snapshot().unwrap().pending.is_empty());
    w.provider.edit(&id_of("s1"), |s| {
        s.tags.insert("env".into(), "hacked".into());
    });
    w.provider.remove(&id_of("s2"));
    prov_engine::state_edit::remove(&*w.store, &["server.s3".into()], Duration::from_secs(5))
        .unwrap();

    let mut opts = prov_engine::testing::World::cli_defaults();
    for destroy in [false, true] {
        opts.destroy = destroy;
        let started = w.plan_with(&opts).unwrap();
        let loaded = w.plan_loaded_with(&opts).unwrap();
        assert!(started.has_changes());
        assert!(!started.resolutions.is_empty());
        assert_eq!(started.tagged_searched, !destroy);
        if !destroy {
            assert!(!started.drift.is_empty());
            assert_eq!(started.tagged.len(), 1, "{:?}", started.tagged);
        }
        let same = |p: &prov_engine::plan::Plan| prov_engine::plan::Plan {
            timestamp: String::new(),
            ..p.clone()
        };
        assert_eq!(same(&started), same(&loaded), "destroy: {destroy}");
    }
}
