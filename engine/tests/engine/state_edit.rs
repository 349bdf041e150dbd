//! Hand edits of records (`prov state rm|mv|unprotect`): all or nothing, refused edits name
//! what is missing or in the way, and each edit is one commit.

use super::{servers, world};
use prov_engine::error::EngineError;
use prov_engine::model::Address;
use prov_engine::state_edit;
use prov_state::{StateRead, StateWrite};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(5);

fn refused(e: EngineError) -> String {
    match e {
        EngineError::Refused(m) => m,
        other => panic!("not a refusal: {other:?}"),
    }
}

#[test]
fn remove_is_all_or_nothing() {
    let w = world(&servers(3, false));
    assert!(w.apply().unwrap().ok());
    let serial = w.store.snapshot().unwrap().meta.serial;
    let m = refused(
        state_edit::remove(&*w.store, &["server.s0".into(), "server.nope".into()], WAIT)
            .unwrap_err(),
    );
    assert_eq!(m, "server.nope is not in the state; nothing was removed");
    assert!(w.store.record("server.s0").unwrap().is_some());
    assert_eq!(w.store.snapshot().unwrap().meta.serial, serial);
    let bad = state_edit::remove(&*w.store, &["servers.s0".into()], WAIT).unwrap_err();
    assert!(refused(bad).contains("invalid address \"servers.s0\""));

    let gone =
        state_edit::remove(&*w.store, &["server.s0".into(), "server.s1".into()], WAIT).unwrap();
    assert!(gone.is_empty());
    assert!(w.store.record("server.s0").unwrap().is_none());
    assert!(w.store.record("server.s1").unwrap().is_none());
    assert!(w.store.record("server.s2").unwrap().is_some());
    assert_eq!(
        w.store.snapshot().unwrap().meta.serial,
        serial + 1,
        "one commit"
    );
}

#[test]
fn moves_check_kinds_declarations_and_the_target() {
    let w = world(&servers(2, false));
    assert!(w.apply().unwrap().ok());
    let m = refused(state_edit::check_move("server.s0", "taskserv.s0.x", None).unwrap_err());
    assert_eq!(
        m,
        "cannot move server.s0 to taskserv.s0.x: a server record cannot become a taskserv"
    );
    let declared = |a: &Address| a.to_string() == "server.s9";
    let m =
        refused(state_edit::check_move("server.s0", "server.typo", Some(&declared)).unwrap_err());
    assert!(
        m.starts_with("server.typo is not declared in the configuration"),
        "{m}"
    );
    state_edit::check_move("server.s0", "server.s9", Some(&declared)).unwrap();

    let m =
        refused(state_edit::move_record(&*w.store, "server.s0", "server.s1", WAIT).unwrap_err());
    assert_eq!(m, "server.s1 is already in the state; nothing was moved");
    let m =
        refused(state_edit::move_record(&*w.store, "server.zz", "server.s9", WAIT).unwrap_err());
    assert_eq!(m, "server.zz is not in the state");

    let before = w.store.record("server.s0").unwrap().unwrap();
    state_edit::move_record(&*w.store, "server.s0", "server.s9", WAIT).unwrap();
    assert!(w.store.record("server.s0").unwrap().is_none());
    let after = w.store.record("server.s9").unwrap().unwrap();
    assert_eq!(after.address, "server.s9");
    assert_eq!(after.attributes, before.attributes);
}

#[test]
fn unprotect_lifts_a_kept_protection_once() {
    let w = world(&servers(1, false));
    assert!(w.apply().unwrap().ok());
    let mut rec = w.store.record("server.s0").unwrap().unwrap();
    rec.protected = true;
    w.store.commit(&[prov_state::Change::Put(rec)]).unwrap();
    assert!(state_edit::unprotect(&*w.store, "server.s0", WAIT).unwrap());
    assert!(!w.store.record("server.s0").unwrap().unwrap().protected);
    let serial = w.store.snapshot().unwrap().meta.serial;
    assert!(!state_edit::unprotect(&*w.store, "server.s0", WAIT).unwrap());
    assert_eq!(
        w.store.snapshot().unwrap().meta.serial,
        serial,
        "nothing written"
    );
    let m = refused(state_edit::unprotect(&*w.store, "server.s7", WAIT).unwrap_err());
    assert_eq!(m, "server.s7 is not in the state; nothing was changed");
}
