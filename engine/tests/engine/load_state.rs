//! `workspace::load_with_state`: the state read while the configuration evaluates (`early`),
//! and only when the configuration cannot name another backend.

use super::*;
use prov_engine::config::EvalOptions;
use prov_engine::error::EngineError;
use prov_engine::workspace::{self, OpenedState};
use prov_state::{MemoryStore, StateRead};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

struct Opened(Arc<MemoryStore>);

impl OpenedState for Opened {
    fn reader(&self) -> &dyn StateRead {
        &*self.0
    }
}

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
    let r = workspace::load_with_state(&w.workspace, &w.registry, &eval, early, |backend| {
        opens.fetch_add(1, Ordering::SeqCst);
        asked.lock().unwrap().push(backend.clone());
        Ok(Opened(w.store.clone()))
    })
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
