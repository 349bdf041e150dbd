//! The sim provider's options: `providers.sim = { ... }` settings plus their environment fallbacks.
//! The keys, types, defaults and constraints are declared once, in the Nickel schema
//! `providers/src/sim/settings.ncl` ([`SCHEMA`], compiled in); prov checks the settings against
//! it (every problem at once, each naming `providers.sim.KEY`) and this module reads the checked
//! value.
//!
//! | key            | type                | meaning                                                  |
//! |----------------|---------------------|----------------------------------------------------------|
//! | `latency_ms`   | number 0..=86400000 | every call takes this long, its simulated work within it (default: env `PROV_SIM_LATENCY_MS`, else 0) |
//! | `fail_call`    | integer >= 1        | the Nth mutating call (create, delete, start, stop, reboot, update, configure-firewall) of this provider instance fails, changing nothing |
//! | `fail_servers` | array of strings    | create/update/delete of these hostnames fail (plus env `PROV_SIM_FAIL_SERVERS`, comma-separated) |
//! | `parallelism`  | integer >= 1        | `Provider::parallelism()`                                |
//! | `read_batch`   | integer 1..=100000  | servers one batched read answers: a refresh reads them in pages of this size, one latency per page (default: env `PROV_SIM_READ_BATCH`, else 500; 1 reads each server with a call of its own) |
//! | `auth`         | record              | accepted, not used (the sim needs no credentials)        |
//! | `api`, `defaults`, `features` | records | the common provider settings (`defaults` is read by the engine) |
//!
//! Unknown keys are errors naming the key. The environment is read once, when the provider is
//! built.

use prov_engine::config::SettingsSchema;
use prov_sim::env::latency_from_ms;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

pub use prov_sim::env::{ENV_FAIL_SERVERS, ENV_LATENCY_MS, ENV_READ_BATCH};
pub use prov_sim::SimEnv;

/// The schema of `providers.sim`.
pub const SCHEMA: SettingsSchema = SettingsSchema::Embedded {
    name: "providers/src/sim/settings.ncl",
    source: include_str!("settings.ncl"),
};

/// Servers one batched read answers when neither the setting nor the environment says.
pub const DEFAULT_READ_BATCH: usize = 500;

#[derive(Debug, Clone, PartialEq)]
pub struct SimOptions {
    pub latency: Duration,
    /// 1-based index of the mutating call to fail.
    pub fail_call: Option<u64>,
    pub fail_servers: BTreeSet<String>,
    pub parallelism: Option<usize>,
    /// Servers one get-servers-info call (a page) answers.
    pub read_batch: usize,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            latency: Duration::ZERO,
            fail_call: None,
            fail_servers: BTreeSet::new(),
            parallelism: None,
            read_batch: DEFAULT_READ_BATCH,
        }
    }
}

/// The checked settings, as the schema shapes them.
#[derive(Deserialize)]
struct Checked {
    latency_ms: Option<f64>,
    fail_call: Option<u64>,
    fail_servers: Vec<String>,
    parallelism: Option<usize>,
    read_batch: Option<usize>,
}

/// Checks the settings against [`SCHEMA`] and applies the environment's fallbacks; every
/// problem is reported (for `validate_config`), each naming its key.
pub fn parse(settings: &Value, env: &SimEnv) -> Result<SimOptions, Vec<String>> {
    let c: Checked = crate::settings::read("sim", &SCHEMA, settings)?;
    let mut errors = Vec::new();
    let latency = match c.latency_ms {
        Some(ms) => latency_from_ms(ms),
        None => env.latency().unwrap_or_else(|e| {
            errors.push(e);
            None
        }),
    }
    .unwrap_or_default();
    let read_batch = match c.read_batch {
        Some(n) => n,
        None => env
            .read_batch()
            .unwrap_or_else(|e| {
                errors.push(e);
                None
            })
            .unwrap_or(DEFAULT_READ_BATCH),
    };
    let mut fail_servers: BTreeSet<String> = c.fail_servers.into_iter().collect();
    fail_servers.extend(env.fail_servers());
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(SimOptions {
        latency,
        fail_call: c.fail_call,
        fail_servers,
        parallelism: c.parallelism,
        read_batch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_values() {
        let env = SimEnv::default();
        assert_eq!(parse(&json!({}), &env).unwrap(), SimOptions::default());
        assert_eq!(parse(&Value::Null, &env).unwrap(), SimOptions::default());
        let o = parse(
            &json!({"latency_ms": 5, "fail_call": 3, "fail_servers": ["a"], "parallelism": 4.0,
                    "read_batch": 1000, "defaults": {"plan": "small"}}),
            &env,
        )
        .unwrap();
        assert_eq!(o.latency, Duration::from_millis(5));
        assert_eq!(o.fail_call, Some(3));
        assert!(o.fail_servers.contains("a"));
        assert_eq!(o.parallelism, Some(4));
        assert_eq!(o.read_batch, 1000);
        assert_eq!(SimOptions::default().read_batch, DEFAULT_READ_BATCH);
    }

    #[test]
    fn env_fallbacks() {
        let env = SimEnv {
            latency_ms: Some("7".into()),
            fail_servers: Some(" x, ,y ".into()),
            ..SimEnv::default()
        };
        let o = parse(&json!({"fail_servers": ["z"]}), &env).unwrap();
        assert_eq!(o.latency, Duration::from_millis(7));
        assert_eq!(o.fail_servers.len(), 3);
        // The setting wins over the environment.
        let o = parse(&json!({"latency_ms": 1}), &env).unwrap();
        assert_eq!(o.latency, Duration::from_millis(1));
        let paged = SimEnv {
            read_batch: Some("250".into()),
            ..SimEnv::default()
        };
        assert_eq!(parse(&json!({}), &paged).unwrap().read_batch, 250);
        let o = parse(&json!({"read_batch": 7}), &paged).unwrap();
        assert_eq!(o.read_batch, 7, "the setting wins");
        let bad = SimEnv {
            read_batch: Some("0".into()),
            ..SimEnv::default()
        };
        assert!(parse(&json!({}), &bad).unwrap_err()[0].contains(ENV_READ_BATCH));
        let bad = SimEnv {
            latency_ms: Some("soon".into()),
            ..SimEnv::default()
        };
        assert!(parse(&json!({}), &bad).unwrap_err()[0].contains(ENV_LATENCY_MS));
    }

    /// Each case: settings, then the `providers.sim.KEY` every problem names (in order).
    #[test]
    fn every_problem_is_reported_naming_its_key() {
        let cases: &[(Value, &[&str])] = &[
            (json!({"latency_ms": -1}), &["latency_ms"]),
            (json!({"latency_ms": "soon"}), &["latency_ms"]),
            (json!({"fail_call": 0}), &["fail_call"]),
            (json!({"fail_servers": "a"}), &["fail_servers"]),
            (json!({"fail_servers": ["a", 3]}), &["fail_servers"]),
            (json!({"parallelism": "x"}), &["parallelism"]),
            (json!({"read_batch": 100001}), &["read_batch"]),
            (json!({"latecny_ms": 5}), &["latecny_ms"]),
            (
                json!({"api": {"base_url": "http://x", "timeout": -1}}),
                &["api.timeout"],
            ),
            (
                json!({"latency_ms": -1, "fail_call": 0, "fail_servers": "a", "parallelism": "x",
                       "read_batch": 100001, "typo": 1}),
                &[
                    "fail_call",
                    "fail_servers",
                    "latency_ms",
                    "parallelism",
                    "read_batch",
                    "typo",
                ],
            ),
        ];
        for (settings, keys) in cases {
            let errs = parse(settings, &SimEnv::default()).unwrap_err();
            assert_eq!(errs.len(), keys.len(), "{settings}: {errs:#?}");
            for (e, k) in errs.iter().zip(keys.iter()) {
                assert!(e.starts_with(&format!("providers.sim.{k}: ")), "{k}: {e}");
            }
        }
        let errs = parse(&json!({"typo": 1}), &SimEnv::default()).unwrap_err();
        assert!(errs[0].contains("unknown setting"), "{errs:?}");
        assert!(parse(&json!(3), &SimEnv::default()).is_err());
    }

    #[test]
    fn a_wrong_credential_is_not_echoed() {
        for auth in [json!("hunter22-secret"), json!(424242424242u64)] {
            let errs = parse(&json!({"auth": auth}), &SimEnv::default()).unwrap_err();
            let all = errs.join("\n");
            assert!(all.starts_with("providers.sim.auth: "), "{all}");
            assert!(
                !all.contains("hunter22") && !all.contains("424242"),
                "{all}"
            );
        }
    }

    #[test]
    fn the_key_table_is_the_schema() {
        use crate::settings::testing::{schema_keys, table_keys};
        assert_eq!(table_keys(include_str!("options.rs")), schema_keys(&SCHEMA));
    }
}
