//! The nesting limit (`MAX_VALUE_DEPTH`) in every backend: random values within it round-trip
//! exactly (records, pending operations, outputs, dumps), a value one level deeper is refused
//! with nothing written, and records an older prov stored deeper than serde_json's default
//! recursion limit can still be read, pulled and removed.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use super::*;

/// Strings that stress an encoder: quotes, escapes, control characters, non-BMP characters,
/// things that look like prov syntax, and arbitrary characters.
fn odd_string() -> BoxedStrategy<String> {
    prop_oneof![
        prop::sample::select(vec![
            "",
            "\"\\/\u{0}\u{1f}\u{7f}\u{2028}\u{2029}\u{feff}",
            "${server.a.ip} $${x} %{y} 🦀 \u{10ffff}",
            "]]]}}}\"[[[{{{",
            "plan",
        ])
        .prop_map(str::to_string),
        prop::collection::vec(any::<char>(), 0..8).prop_map(String::from_iter),
    ]
    .boxed()
}

/// Numbers at the edges of what JSON values hold: i64/u64 extremes, negative zero, tiny and
/// huge floats (JSON has no NaN or infinity).
fn number() -> BoxedStrategy<Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![
            json!(i64::MIN),
            json!(u64::MAX),
            json!(-0.0),
            json!(f64::MIN_POSITIVE),
            json!(f64::MAX),
            json!(-f64::MAX),
            json!(5e-324),
            json!(0.1),
        ]),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        odd_string().prop_map(Value::String),
    ]
    .boxed()
}

/// A value nesting `depth` levels (`MAX_VALUE_DEPTH` when `None`, otherwise drawn up to it): a
/// spine of objects and arrays, each level with up to two scalar siblings, so the deepest path
/// is as deep as allowed and the value is not only a chain.
fn value_of_depth(depth: Option<usize>) -> BoxedStrategy<Value> {
    let level = (
        any::<bool>(),
        odd_string(),
        prop::collection::vec((odd_string(), scalar()), 0..3),
    );
    let depth = match depth {
        Some(d) => Just(d).boxed(),
        None => (0..=MAX_VALUE_DEPTH).boxed(),
    };
    (
        depth,
        prop::collection::vec(level, MAX_VALUE_DEPTH),
        scalar(),
    )
        .prop_map(|(depth, levels, leaf)| {
            let mut v = leaf;
            for (is_array, key, siblings) in levels.into_iter().take(depth).rev() {
                v = if is_array {
                    let mut a: Vec<Value> = siblings.into_iter().map(|(_, s)| s).collect();
                    let at = a.len() / 2;
                    a.insert(at, v);
                    Value::Array(a)
                } else {
                    let mut m = Map::new();
                    for (k, s) in siblings {
                        m.insert(k, s);
                    }
                    // The spine's key last, so it replaces a sibling with the same key.
                    m.insert(key, v);
                    Value::Object(m)
                };
            }
            v
        })
        .boxed()
}

/// Any value within the limit, mostly at it.
fn value_within_limit() -> BoxedStrategy<Value> {
    prop_oneof![
        3 => value_of_depth(Some(MAX_VALUE_DEPTH)),
        1 => value_of_depth(None),
        1 => scalar().prop_recursive(4, 40, 6, |inner| prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((odd_string(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]),
    ]
    .boxed()
}

/// A record (and a pending operation, and an output) carrying random values, written, read
/// back by every read path (snapshot, record, snapshot without configs, dump, reopen), and
/// compared exactly: equal values and byte-identical JSON (key order kept).
pub(super) fn check_values_within_the_limit_round_trip(h: &mut dyn Harness) {
    // Each case writes and reads five values 100 levels deep (the pretty dump of one is ~1 MB).
    let cases = 32;
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let s = std::cell::RefCell::new(Some(h.open()));
    let strategy = (
        value_within_limit(),
        value_within_limit(),
        value_within_limit(),
        value_within_limit(),
        value_within_limit(),
        odd_string(),
    );
    let result = runner.run(
        &strategy,
        |(config, attributes, outputs, spec, out, name)| {
            let mut r = rec("server.deep", 1);
            r.config = config;
            r.attributes = attributes;
            r.outputs = outputs;
            let mut p = pending("server.deep-pending", "create");
            p.spec = spec;
            let mut o = Map::new();
            o.insert(name, out);
            let guard = s.borrow();
            let store = guard.as_ref().unwrap();
            store
                .commit(&[Change::Put(r.clone()), Change::PutPending(p.clone())])
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            store
                .set_outputs(o.clone())
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let same = |what: &str, got: &Value, want: &Value| -> Result<(), TestCaseError> {
                if got != want || json_text(got) != json_text(want) {
                    let diff = first_difference(got, want, what.to_string());
                    return Err(TestCaseError::fail(diff.unwrap_or_default()));
                }
                Ok(())
            };
            let check = |snap: &Snapshot, configs: bool| -> Result<(), TestCaseError> {
                let got = &snap.resources["server.deep"];
                if configs {
                    same("config", &got.config, &r.config)?;
                } else {
                    prop_assert!(got.config.is_null());
                }
                same("attributes", &got.attributes, &r.attributes)?;
                same("outputs", &got.outputs, &r.outputs)?;
                same("spec", &snap.pending["server.deep-pending"].spec, &p.spec)?;
                same(
                    "workspace outputs",
                    &Value::Object(snap.outputs.clone()),
                    &Value::Object(o.clone()),
                )
            };
            check(&store.snapshot().unwrap(), true)?;
            check(&store.snapshot_without_configs().unwrap(), false)?;
            prop_assert_eq!(store.record("server.deep").unwrap().unwrap(), r.clone());
            // The dump, as `state pull` writes it and `state push` reads it.
            let text = store.dump().unwrap().to_json();
            let dump = StateDump::from_json(&text, "pulled.json").unwrap();
            prop_assert_eq!(&dump.resources, &vec![r.clone()]);
            prop_assert_eq!(&dump.pending, &vec![p.clone()]);
            prop_assert_eq!(&dump.outputs, &o);
            Ok(())
        },
    );
    // Once more after reopening: what was written, not what a cache holds.
    let last = s.borrow().as_ref().unwrap().snapshot().unwrap();
    drop(s.borrow_mut().take());
    let reopened = h.open();
    assert_eq!(reopened.snapshot().unwrap(), last);
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Where two values first differ, and how (a readable failure for values 100 levels deep).
fn first_difference(got: &Value, want: &Value, path: String) -> Option<String> {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) if g.len() == w.len() => {
            g.iter().zip(w.iter()).find_map(|((gk, gv), (wk, wv))| {
                if gk != wk {
                    Some(format!("{path}: key {gk:?} where {wk:?} was written"))
                } else {
                    first_difference(gv, wv, format!("{path}.{gk:?}"))
                }
            })
        }
        (Value::Array(g), Value::Array(w)) if g.len() == w.len() => g
            .iter()
            .zip(w)
            .enumerate()
            .find_map(|(i, (gv, wv))| first_difference(gv, wv, format!("{path}[{i}]"))),
        _ if got == want && json_text(got) == json_text(want) => None,
        _ => Some(format!(
            "{path}: read back {} where {} was written",
            truncate(got.to_string()),
            truncate(want.to_string())
        )),
    }
}

/// The bytes a value is stored as (key order and number form included).
fn json_text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn truncate(mut s: String) -> String {
    if s.len() > 200 {
        let mut end = 200;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// A value one level deeper than the limit, in any value a commit stores, is refused naming
/// the address and where, and nothing is written (not the other changes of the commit either).
pub(super) fn check_too_deep_values_are_refused(h: &mut dyn Harness) {
    let s = h.open();
    let ok = deep_value(MAX_VALUE_DEPTH);
    let over = deep_value(MAX_VALUE_DEPTH + 1);
    let serial = s.commit(&[Change::Put(rec("server.ok", 1))]).unwrap();
    let before = s.snapshot().unwrap();
    let mut cases: Vec<(Vec<Change>, &str)> = Vec::new();
    for field in ["config", "attributes", "outputs"] {
        let mut r = rec("server.deep", 1);
        let mut good = rec("server.fine", 1);
        good.attributes = ok.clone();
        match field {
            "config" => r.config = json!({"tags": over.clone()}),
            "attributes" => r.attributes = over.clone(),
            _ => r.outputs = over.clone(),
        }
        cases.push((vec![Change::Put(good), Change::Put(r)], field));
    }
    let mut p = pending("server.deep", "create");
    p.spec = over.clone();
    cases.push((
        vec![Change::Put(rec("server.fine", 1)), Change::PutPending(p)],
        "spec",
    ));
    for (changes, field) in cases {
        match s.commit(&changes) {
            Err(e @ StateError::InvalidChange { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("\"server.deep\"")
                        && msg.contains(field)
                        && msg.contains(&format!("more than the limit of {MAX_VALUE_DEPTH}"))
                        && msg.contains("nothing was written"),
                    "{msg}"
                );
            }
            other => panic!("{field}: expected InvalidChange, got {other:?}"),
        }
    }
    let mut outputs = Map::new();
    outputs.insert("fine".into(), ok.clone());
    outputs.insert("deep".into(), over.clone());
    let e = s.set_outputs(outputs).unwrap_err().to_string();
    assert!(e.contains("\"output.deep\""), "{e}");
    // A dump carrying one is refused by push as well.
    let mut dump = s.dump().unwrap();
    let mut r = rec("server.deep", 1);
    r.attributes = over;
    dump.resources.push(r);
    let e = s.replace_all(&dump, false).unwrap_err().to_string();
    assert!(e.contains("\"server.deep\""), "{e}");
    assert_eq!(s.snapshot().unwrap(), before);
    assert_eq!(s.meta().unwrap().serial, serial);
}

/// `depth` levels of objects and arrays.
pub(super) fn deep_value(depth: usize) -> Value {
    let mut v = json!("leaf");
    for i in 0..depth {
        v = if i % 2 == 0 {
            json!({"k": v})
        } else {
            json!([v])
        };
    }
    v
}

/// A record an older prov stored with settings 130 levels deep (like the reported case): past
/// serde_json's default recursion limit, so every command used to fail on the state. It is read
/// by every read path, pulled and pushed back after removing it, and removed with a commit;
/// its history keeps it readable.
pub(super) fn check_records_older_prov_stored_too_deep_still_read(h: &mut dyn Harness) {
    let s = h.open();
    s.commit(&[Change::Put(rec("server.ok", 1))]).unwrap();
    drop(s);
    let mut old = rec("taskserv.web.redis", 1);
    old.attributes = json!({"settings": deep_value(130)});
    old.config = old.attributes.clone();
    let raw = json!({"format_version": RECORD_FORMAT_VERSION, "record": old}).to_string();
    assert!(
        serde_json::from_str::<Value>(&raw).is_err(),
        "deeper than serde_json reads by default"
    );
    h.put_raw("taskserv.web.redis", raw.as_bytes());
    let s = h.open();
    let snap = s.snapshot().unwrap();
    assert_eq!(snap.resources["taskserv.web.redis"], old);
    assert_eq!(
        s.snapshot_without_configs().unwrap().resources["taskserv.web.redis"].attributes,
        old.attributes
    );
    assert_eq!(s.record("taskserv.web.redis").unwrap().unwrap(), old);
    // `state pull` works, and the pulled file reads back.
    let text = s.dump().unwrap().to_json();
    let dump = StateDump::from_json(&text, "backup.json").unwrap();
    assert_eq!(dump.resources.len(), 2);
    // Rewriting it as it is would store a value over the limit: refused.
    assert!(s.commit(&[Change::Put(old.clone())]).is_err());
    // `state rm`: a delete moves the stored bytes to history untouched.
    s.commit(&[Change::Delete("taskserv.web.redis".into())])
        .unwrap();
    assert!(s.record("taskserv.web.redis").unwrap().is_none());
    let h0 = s.history("taskserv.web.redis").unwrap();
    assert_eq!(h0[0].record, old);
    // The edited backup pushes back.
    let mut edited = dump;
    edited
        .resources
        .retain(|r| r.address != "taskserv.web.redis");
    edited.serial = s.meta().unwrap().serial;
    s.replace_all(&edited, false).unwrap();
    assert_eq!(
        s.snapshot().unwrap().resources.keys().collect::<Vec<_>>(),
        vec!["server.ok"]
    );
}
