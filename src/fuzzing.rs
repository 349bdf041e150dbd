//! One check per decoder of outside input, shared by the `cargo fuzz` targets in `fuzz/` and by
//! their bounded equivalent that runs in `cargo test` (the tests below). Each check feeds one
//! input to a decoder and panics only when the decoder misbehaves: a panic inside it, or an
//! input it accepts that does not survive its own round trip. An `Err` is the right answer to bad
//! input. docs/reliability.md ("Fuzzing") says how to run them longer.

use std::path::Path;

use prov_engine::crypt::{self, Content, Key, Keys};
use prov_engine::drift::{parse_ignore, rule_for, Drift, DriftKind};
use prov_engine::extension::{parse_manifest, ExtensionKind};
use prov_engine::model::Address;
use prov_engine::plan::file as plan_file_format;
use prov_engine::plan::review;
use prov_engine::refs::{find_refs, parse_template, Segment};
use prov_state::{
    decode_record, decode_record_body, decode_record_without_config, Change, MemoryStore,
    StateDump, StateError, StateRead, StateWrite,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A check: one input, a panic on misbehaviour.
pub type Check = fn(&[u8]);

/// The fuzzed decoders by target name (the names of `fuzz/fuzz_targets/*.rs`).
pub const TARGETS: &[(&str, Check)] = &[
    ("plan_file", plan_file),
    ("state_record", state_record),
    ("refs", refs),
    ("drift_ignore", drift_ignore),
    ("manifest", manifest),
    ("duration", duration),
];

/// A saved plan (`prov plan --out`): `plan::file::from_bytes`. Inputs that are JSON with a
/// `plan` are also decoded with their checksum made right, so the decoder behind the checksum
/// is reached; a plan that decodes must write and read back unchanged. The same input goes to
/// the decoders of what else stands where a plan is read: the encrypted envelope
/// (`crypt::Keys::open`) and the reviewed-plan record (`review::from_plan_json`).
pub fn plan_file(data: &[u8]) {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    let keys = KEYS.get_or_init(|| Keys {
        current: Some(Key::new(b"the fuzzing key, long enough", "fuzzing").expect("long enough")),
        old: Vec::new(),
    });
    if let Ok(plain) = keys.open(Content::Plan, data) {
        assert!(
            crypt::is_encrypted(data) || *plain == *data,
            "a plain file was changed by opening it"
        );
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let _ = review::from_plan_json(&v);
    }
    let mut inputs = vec![data.to_vec()];
    inputs.extend(with_checksum(data));
    for input in inputs {
        if let Ok(plan) = plan_file_format::from_bytes(&input) {
            let bytes = plan_file_format::to_bytes(&plan);
            let again = plan_file_format::from_bytes(&bytes)
                .unwrap_or_else(|e| panic!("a plan prov wrote does not read back: {e}"));
            assert!(again == plan, "a plan changed in its round trip");
        }
    }
}

/// `{"checksum": <right>, "plan": <data's plan>}`, when `data` is JSON with a `plan`.
fn with_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_slice(data).ok()?;
    let body = serde_json::to_string(v.get("plan")?).ok()?;
    let sum: String = Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("{{\"checksum\":\"{sum}\",\"plan\":{body}}}").into_bytes())
}

/// Stored state: one record as sled and the memory store keep it (with format upgrades), as
/// PostgreSQL keeps it (version and body apart), and a whole dump (`state push`). What the full
/// decoder reads, the config-less one reads the same (minus the config); a record that decodes is stored again and reads back
/// unchanged, or is refused as an invalid change (never written half).
pub fn state_record(data: &[u8]) {
    // The key a store would have found it under: its own address, so the check behind the
    // key comparison is reached.
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let key = parsed
        .as_ref()
        .and_then(|v| v.pointer("/record/address").or_else(|| v.get("address")))
        .and_then(Value::as_str)
        .unwrap_or("server.web-01")
        .to_string();
    let full = decode_record(&key, data);
    let lean = decode_record_without_config(&key, data);
    match (&full, &lean) {
        (Ok(f), Ok(l)) => {
            let mut f = f.clone();
            f.config = Value::Null;
            assert!(f == *l, "the decoders disagree: {f:?} / {l:?}");
        }
        (Err(_), _) => {}
        // The config-less decoder skips `config` without validating it (that is its point), so
        // it may accept a record whose config alone is damaged; never the other way round.
        (Ok(_), Err(_)) => panic!("the config-less decoder refuses a record: {lean:?}"),
    }
    if let Ok(r) = full {
        let store = MemoryStore::new();
        match store.commit(&[Change::Put(r.clone())]) {
            Ok(_) => {
                let back = store
                    .record(&r.address)
                    .expect("a stored record reads back");
                assert!(
                    back.as_ref() == Some(&r),
                    "a record changed when stored again"
                );
            }
            Err(StateError::InvalidChange { .. }) => {
                assert!(store.snapshot().unwrap().resources.is_empty());
            }
            Err(e) => panic!("storing a decoded record failed: {e}"),
        }
    }
    for version in [1, 2, prov_state::RECORD_FORMAT_VERSION + 1] {
        let _ = decode_record_body(&key, version, data);
    }
    if let Ok(dump) = StateDump::from_json(data, "fuzz input") {
        let again = StateDump::from_json(&dump.to_json(), "its own output")
            .unwrap_or_else(|e| panic!("a dump prov wrote does not read back: {e}"));
        assert!(again == dump, "a dump changed in its round trip");
        let store = MemoryStore::new();
        let _ = store.replace_all(&dump, true);
    }
}

/// `${…}` references in string values (`refs::parse_template`, `refs::find_refs`) and resource
/// addresses (`Address::from_str`): references have three or more non-empty parts, literals
/// are never empty, an address that parses prints as one that parses to itself.
pub fn refs(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(segments) = parse_template(&text) {
        for s in &segments {
            match s {
                Segment::Lit(l) => assert!(!l.is_empty(), "an empty literal"),
                Segment::Ref(r) => assert!(
                    r.0.len() >= 3 && r.0.iter().all(|p| !p.is_empty()),
                    "a malformed reference was accepted: {r}"
                ),
            }
        }
    }
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        let mut found = Vec::new();
        let _ = find_refs(&v, "", &mut found);
    }
    for candidate in std::iter::once(text.as_ref()).chain(text.lines()) {
        if let Ok(a) = candidate.parse::<Address>() {
            let printed = a.to_string();
            assert_eq!(printed.parse::<Address>().ok(), Some(a), "{printed}");
        }
    }
}

/// A drift ignore file (`prov drift --ignore FILE`): rules that parse are applied to a drift
/// at their own address and write back as the same rules.
pub fn drift_ignore(data: &[u8]) {
    if let Ok(rules) = parse_ignore(data, "fuzz input") {
        for r in &rules {
            let d = Drift {
                address: r.address.clone(),
                kind: DriftKind::Gone,
            };
            let _ = rule_for(&rules, &d, r.attribute.as_deref(), "2026-12-06");
            let _ = rule_for(&rules, &d, None, "");
        }
        let text = serde_json::to_vec(&rules).expect("rules serialise");
        assert_eq!(parse_ignore(&text, "its own output").ok(), Some(rules));
    }
}

/// An extension's `manifest.toml` (`extension::parse_manifest`), of any kind and of each kind.
pub fn manifest(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let dir = Path::new("/extensions/taskservs/fuzz");
    for expected in [
        None,
        Some(ExtensionKind::Provider),
        Some(ExtensionKind::Taskserv),
        Some(ExtensionKind::Cluster),
    ] {
        if let Ok(ext) = parse_manifest(&text, dir, expected) {
            assert_eq!(ext.name.as_str(), ext.manifest.extension.name);
            if let Some(k) = expected {
                assert_eq!(ext.manifest.extension.kind, k);
            }
        }
    }
}

/// Duration flags (`--lock-timeout`, `--call-timeout`: `cli::parse_duration`).
pub fn duration(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::cli::parse_duration(&text);
}

/// Valid inputs of each target, to start mutating from (and `cargo fuzz`'s first corpus).
pub fn seeds(target: &str) -> Vec<Vec<u8>> {
    let record = json!({
        "address": "server.web-01", "kind": "server", "implementation": "sim",
        "provider_id": "sim-1", "config": {"plan": "small", "tags": {"peer": "${server.db.ip}"}},
        "attributes": {"plan": "small", "tags": {"peer": "10.0.0.1"}, "n": [1, -2, 2.5e-8]},
        "outputs": {"private_ip": "10.0.0.2"}, "dependencies": ["server.db"],
        "updated_at": 1_795_615_387u64, "sensitive_paths": ["tags.peer"],
    });
    let text = |v: &Value| v.to_string().into_bytes();
    match target {
        "plan_file" => plan_file_seeds(&record),
        "state_record" => state_record_seeds(&record),
        "refs" => [
            "${server.web-01.private_ip}",
            "http://${server.a.public_ip}:${taskserv.a.redis.port}/x $${not.a.ref}",
            "${cluster.bk.registry.endpoint}",
            "server.web-01\ntaskserv.web-01.redis\ncluster.bk.registry\ncluster.bk",
            r#"{"tags": {"peer": "${server.db.ip}"}, "list": ["${cluster.c.x}", 1]}"#,
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "drift_ignore" => vec![text(&json!([
            {"address": "server.web-01", "attribute": "tags.owner", "reason": "r",
             "expires": "2027-01-31"},
            {"address": "taskserv.web-01.redis", "reason": "vendor upgrade"},
        ]))],
        "manifest" => vec![
            b"[extension]\nname = \"redis\"\ntype = \"taskserv\"\nversion = \"1.0.0\"\n\
              description = \"d\"\ndependencies = [\"containerd\"]\n\n\
              [capabilities]\nupgrade = true\n\n[taskserv]\nhealth = \"x\"\n"
                .to_vec(),
            b"[extension]\nname = \"p\"\ntype = \"provider\"\nversion = \"0.1\"\n\
              [exec]\nprogram = \"./p\"\ntimeout = \"30s\"\n"
                .to_vec(),
        ],
        "duration" => ["30s", "500ms", "2m", "1h", "1.5", " 10s ", "0"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect(),
        _ => Vec::new(),
    }
}

/// `plan_file` seeds: a normal plan with every action, a refresh-only one with every drift
/// kind and resolution, and an empty destroy.
fn plan_file_seeds(record: &Value) -> Vec<Vec<u8>> {
    let text = |v: &Value| v.to_string().into_bytes();
    let change = |action: Value| {
        json!({
            "address": "server.web-01", "implementation": "sim", "action": action,
            "before": {"plan": "small"}, "after": {"plan": "large"},
            "after_unknown": {"ip": true}, "config": {"plan": "large"},
            "diffs": [{"path": "plan", "before": "small", "after": "large",
                       "unknown": false, "forces_replacement": false}],
            "depends_on": ["server.db"], "prior_dependencies": [],
            "provider_id": "sim-1",
            "lifecycle": {"prevent_destroy": false, "create_before_destroy": false,
                          "ignore_changes": []},
            "declared_at": "main.ncl:3:5", "sensitive": ["tags.token"],
        })
    };
    let plan = |extra: Value| {
        let mut p = json!({
            "format": "prov-plan", "format_version": 1, "prov_version": "0.1.0",
            "mode": "normal", "lineage": "ab12", "serial": 3, "config_hash": "00",
            "targets": ["server.web-01"], "outputs": {"ip": "${server.web-01.ip}"},
            "sensitive_outputs": ["ip"], "providers": {"sim": {"latency_ms": 0}},
            "changes": [
                change(json!({"type": "no_op"})),
                change(json!({"type": "create"})),
                change(json!({"type": "update"})),
                change(json!({"type": "replace", "reason": "zone",
                              "create_before_destroy": true})),
                change(json!({"type": "delete", "reason": "removed"})),
            ],
            "output_changes": [{"name": "ip", "before": null, "after": "1.2.3.4"}],
            "resolutions": [], "drift": [], "refreshed": [],
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            p[k] = v.clone();
        }
        with_checksum(&text(&json!({ "plan": p }))).expect("a plan")
    };
    let pending = json!({
        "address": "server.web-01", "operation": "create", "kind": "server",
        "implementation": "sim", "provider_id": null, "spec": {"plan": "small"},
        "dependencies": [], "started_at": 1, "run_id": "r",
    });
    vec![
        plan(json!({})),
        plan(json!({
            "mode": "refresh-only",
            "drift": [
                {"address": "server.a", "kind": {"type": "gone"}},
                {"address": "server.b", "kind": {"type": "stopped"}},
                {"address": "server.c", "kind": {"type": "changed", "diffs": []}},
                {"address": "taskserv.a.b", "kind": {"type": "version",
                    "recorded": "1", "real": null}},
                {"address": "server.d", "kind": {"type": "unmanaged",
                    "provider": "sim", "id": "i", "hostname": "h"}},
                {"address": "server.e", "kind": {"type": "error", "message": "m"}},
            ],
            "refreshed": [{"address": "server.web-01", "record": record},
                          {"address": "server.gone", "record": null}],
            "resolutions": [
                {"pending": pending, "outcome": {"type": "adopt", "record": record},
                 "note": "n"},
                {"pending": pending, "outcome": {"type": "clear"}, "note": ""},
                {"pending": pending, "outcome": {"type": "delete_record"}, "note": ""},
                {"pending": pending, "outcome": {"type": "finish_delete",
                    "provider_id": "sim-1"}, "note": ""},
            ],
        })),
        plan(json!({"mode": "destroy", "changes": []})),
    ]
}

/// `state_record` seeds: a record in today's format, one older format, bare, and a whole state.
fn state_record_seeds(record: &Value) -> Vec<Vec<u8>> {
    let text = |v: &Value| v.to_string().into_bytes();
    let mut v1 = record.clone();
    v1.as_object_mut().unwrap().remove("sensitive_paths");
    vec![
        text(&json!({"format_version": prov_state::RECORD_FORMAT_VERSION,
                     "record": record})),
        text(&json!({"format_version": 1, "record": v1})),
        text(record),
        text(&json!({
            "format": "prov-state", "format_version": 1, "lineage": "ab12",
            "serial": 7,
            "resources": [{"format_version": prov_state::RECORD_FORMAT_VERSION,
                           "record": record}],
            "outputs": {"ip": "10.0.0.2"},
            "pending": [{
                "address": "server.db", "operation": "delete", "kind": "server",
                "implementation": "sim", "provider_id": "sim-2",
                "spec": {"plan": "small"}, "dependencies": [], "started_at": 1,
                "run_id": "r",
            }],
        })),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens a mutation may insert: JSON and TOML structure, prov syntax, numbers at the edges.
    const TOKENS: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        "\"",
        ",",
        ":",
        "\\",
        "\\u0000",
        "\\ud800",
        "null",
        "true",
        "-",
        "1e999",
        "-0",
        "18446744073709551616",
        "-9223372036854775809",
        "0.1e-400",
        "${",
        "$${",
        "}",
        ".",
        "..",
        "server.",
        "taskserv.",
        "cluster.",
        "\n",
        "=",
        "[[",
        "]]",
        "'''",
        "\"format_version\":0",
        "\"format_version\":1",
        "\"format_version\":4294967295",
        "\"record\":",
        "\"type\":\"adopt\"",
        "9999999999999999999h",
        "1e308s",
        "ms",
        "é",
        "🦀",
        "\u{0}",
        "\u{7f}",
    ];

    /// xorshift64*: deterministic, so a failure reproduces with the printed case number.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[Vec<u8>]) {
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(input.len() + 1);
            match rng.below(8) {
                0 if !input.is_empty() => {
                    let i = rng.below(input.len());
                    input[i] ^= 1 << rng.below(8);
                }
                1 if !input.is_empty() => {
                    let end = (at + 1 + rng.below(16)).min(input.len());
                    input.drain(at.min(end)..end);
                }
                2 => {
                    let t = TOKENS[rng.below(TOKENS.len())];
                    insert(input, at, t.as_bytes());
                }
                3 => input.insert(at, rng.next() as u8),
                4 if !input.is_empty() => {
                    // Repeat a chunk (deeper nesting, longer lists).
                    let start = rng.below(input.len());
                    let end = (start + 1 + rng.below(32)).min(input.len());
                    let chunk = input[start..end].to_vec();
                    for _ in 0..1 + rng.below(4) {
                        insert(input, at, &chunk);
                    }
                }
                5 => input.truncate(at),
                6 => {
                    // Splice in part of another seed.
                    let other = &seeds[rng.below(seeds.len())];
                    let start = rng.below(other.len());
                    let end = (start + rng.below(64)).min(other.len());
                    insert(input, at, &other[start..end]);
                }
                _ => {
                    let i = rng.below(input.len() + 1);
                    let v = [b'0', b'9', b'-', b'"', b'.', b'e', 0xff][rng.below(7)];
                    input.insert(i, v);
                }
            }
        }
    }

    fn insert(input: &mut Vec<u8>, at: usize, bytes: &[u8]) {
        let tail = input.split_off(at);
        input.extend_from_slice(bytes);
        input.extend(tail);
    }

    /// The bounded run of every fuzz target: the seeds, then 3,000 mutated inputs and 300
    /// random ones per target, deterministically. A panic names the target and the case.
    #[test]
    fn fuzz_targets_bounded_run() {
        const CASES: usize = 3000;
        for (name, check) in TARGETS {
            let seeds = seeds(name);
            assert!(!seeds.is_empty(), "{name} has no seeds");
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ name.len() as u64);
            let t = std::time::Instant::now();
            for (i, seed) in seeds.iter().enumerate() {
                run(name, *check, seed, &format!("seed {i}"));
            }
            for case in 0..CASES {
                let mut input = seeds[rng.below(seeds.len())].clone();
                mutate(&mut rng, &mut input, &seeds);
                run(name, *check, &input, &format!("case {case}"));
            }
            for case in 0..CASES / 10 {
                let input: Vec<u8> = (0..rng.below(256)).map(|_| rng.next() as u8).collect();
                run(name, *check, &input, &format!("random case {case}"));
            }
            eprintln!("{name}: {} inputs in {:?}", CASES * 11 / 10, t.elapsed());
        }
    }

    fn run(name: &str, check: Check, input: &[u8], case: &str) {
        let r = std::panic::catch_unwind(|| check(input));
        if let Err(p) = r {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz target {name} failed on {case}: {msg}\ninput: {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The seeds exercise the decoders beyond their first error: each target accepts them.
    /// With `PROV_FUZZ_WRITE_SEEDS=DIR` they are also written to `DIR/TARGET/seed-N`, the
    /// starting corpus of `cargo fuzz run` (docs/reliability.md).
    #[test]
    fn seeds_are_accepted() {
        if let Some(dir) = std::env::var_os("PROV_FUZZ_WRITE_SEEDS") {
            for (name, _) in TARGETS {
                let d = Path::new(&dir).join(name);
                std::fs::create_dir_all(&d).unwrap();
                for (i, s) in seeds(name).iter().enumerate() {
                    std::fs::write(d.join(format!("seed-{i}")), s).unwrap();
                }
            }
        }
        for s in seeds("plan_file") {
            plan_file_format::from_bytes(&s).unwrap();
        }
        for s in &seeds("state_record")[..2] {
            decode_record("server.web-01", s).unwrap();
        }
        StateDump::from_json(&seeds("state_record")[3], "seed").unwrap();
        parse_ignore(&seeds("drift_ignore")[0], "seed").unwrap();
        for s in seeds("manifest") {
            parse_manifest(std::str::from_utf8(&s).unwrap(), Path::new("/x"), None).unwrap();
        }
        for s in seeds("duration") {
            crate::cli::parse_duration(std::str::from_utf8(&s).unwrap()).unwrap();
        }
        for s in seeds("refs") {
            parse_template(std::str::from_utf8(&s).unwrap()).unwrap();
        }
    }
}
