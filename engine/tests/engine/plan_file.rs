//! Plan files: what is written reads back as the same plan, in clear and encrypted; a wrong key and a damaged file are errors naming the file.

use super::{servers, world};
use prov_engine::crypt::{Key, Keys};
use prov_engine::plan::file;
use prov_engine::plan::Plan;

/// `plan` as a file keeps it: without what the providers answered when it was made (the tagged
/// servers found, and that they were searched for), which apply asks again.
fn as_saved(plan: &Plan) -> Plan {
    let mut p = plan.clone();
    p.tagged.clear();
    p.tagged_searched = false;
    p
}

#[test]
fn a_saved_plan_reads_back_as_the_same_plan() {
    let w = world(&servers(3, true));
    assert!(w.apply().unwrap().ok());
    w.write(&servers(5, true).replace(
        r#"s1 = { provider = "fake""#,
        r#"s1 = { provider = "fake", plan = "large""#,
    ));
    let mut plan = w.plan().unwrap();
    assert!(plan.changes.iter().any(|c| !c.action.is_noop()));
    let path = w.workspace.dir.join("plan.out");
    file::write(&path, &plan, &Keys::none()).unwrap();
    assert!(plan.tagged_searched, "a plan that refreshes searches");
    let back = file::read(&path, &Keys::none()).unwrap();
    assert_eq!(back, as_saved(&plan));
    // The state it was made against travels with it (kind and key only).
    plan.backend = Some(prov_engine::plan::BackendRef {
        kind: "pg".into(),
        workspace: "prod".into(),
    });
    file::write(&path, &plan, &Keys::none()).unwrap();
    assert_eq!(file::read(&path, &Keys::none()).unwrap(), as_saved(&plan));
}

#[test]
fn an_encrypted_plan_needs_its_key() {
    let w = world(&servers(2, false));
    let plan = w.plan().unwrap();
    let keys = |secret: &[u8]| Keys {
        current: Some(Key::new(secret, "test").unwrap()),
        old: vec![],
    };
    let path = w.workspace.dir.join("plan.out");
    file::write(&path, &plan, &keys(b"0123456789abcdef0123456789abcdef")).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains("\"s0\""));
    assert_eq!(
        file::read(&path, &keys(b"0123456789abcdef0123456789abcdef")).unwrap(),
        as_saved(&plan)
    );
    let wrong = file::read(&path, &keys(b"another key, long enough to be one")).unwrap_err();
    assert!(wrong.to_string().contains("plan.out"), "{wrong}");
    let none = file::read(&path, &Keys::none()).unwrap_err();
    assert!(none.to_string().contains("plan.out"), "{none}");
}

#[test]
fn a_damaged_plan_file_is_an_error_naming_it() {
    let w = world(&servers(1, false));
    let plan = w.plan().unwrap();
    let path = w.workspace.dir.join("plan.out");
    file::write(&path, &plan, &Keys::none()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    let err = file::read(&path, &Keys::none()).unwrap_err();
    assert!(err.to_string().contains("plan.out"), "{err}");
}
