//! The sim provider's options: `providers.sim = { ... }` settings plus their environment fallbacks.
//!
//! | key            | type                | meaning                                                  |
//! |----------------|---------------------|----------------------------------------------------------|
//! | `latency_ms`   | number >= 0         | every call sleeps this long (default: env `PROV_SIM_LATENCY_MS`, else 0) |
//! | `fail_call`    | integer >= 1        | the Nth mutating call (create, delete, start, stop, reboot, update, configure-firewall) of this provider instance fails, changing nothing |
//! | `fail_servers` | array of strings    | create/update/delete of these hostnames fail (plus env `PROV_SIM_FAIL_SERVERS`, comma-separated) |
//! | `parallelism`  | integer >= 1        | `Provider::parallelism()`                                |
//! | `read_batch`   | integer 1..=100000  | servers one batched read answers: a refresh reads them in pages of this size, one latency per page (default: env `PROV_SIM_READ_BATCH`, else 500; 1 reads each server with a call of its own) |
//!
//! Unknown keys are ignored (the settings record also carries common keys such as `defaults`);
//! a known key with the wrong type is an error naming the key. The environment is read once, when
//! the provider is built.

use prov_sim::env::{latency_from_ms, MAX_READ_BATCH};
use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;

pub use prov_sim::env::{ENV_FAIL_SERVERS, ENV_LATENCY_MS, ENV_READ_BATCH};
pub use prov_sim::SimEnv;

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

fn positive_integer(settings_key: &str, v: &Value) -> Result<u64, String> {
    match v.as_u64() {
        Some(n) if n >= 1 => Ok(n),
        // Nickel numbers may arrive as floats (`3.0`).
        _ => match v.as_f64() {
            Some(f) if f >= 1.0 && f.fract() == 0.0 && f <= u64::MAX as f64 => Ok(f as u64),
            _ => Err(format!(
                "providers.sim.{settings_key} must be a positive integer, got {v}"
            )),
        },
    }
}

/// Parses the settings; every problem is reported (for `validate_config`), each naming its key.
pub fn parse(settings: &Value, env: &SimEnv) -> Result<SimOptions, Vec<String>> {
    let empty = serde_json::Map::new();
    let map = match settings {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(vec![format!(
                "providers.sim settings must be a record, got {other}"
            )])
        }
    };
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let mut errors = Vec::new();
    let mut opts = SimOptions::default();

    match get("latency_ms") {
        Some(v) => match v.as_f64() {
            Some(ms) if latency_from_ms(ms).is_some() => {
                opts.latency = latency_from_ms(ms).unwrap_or_default()
            }
            _ => errors.push(format!(
                "providers.sim.latency_ms must be a number from 0 to 86400000, got {v}"
            )),
        },
        None => match env.latency() {
            Ok(d) => opts.latency = d.unwrap_or_default(),
            Err(e) => errors.push(e),
        },
    }

    if let Some(v) = get("fail_call") {
        match positive_integer("fail_call", v) {
            Ok(n) => opts.fail_call = Some(n),
            Err(e) => errors.push(e),
        }
    }

    if let Some(v) = get("fail_servers") {
        match v.as_array() {
            Some(items) if items.iter().all(Value::is_string) => opts
                .fail_servers
                .extend(items.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => errors.push(format!(
                "providers.sim.fail_servers must be an array of hostnames (strings), got {v}"
            )),
        }
    }
    opts.fail_servers.extend(env.fail_servers());

    if let Some(v) = get("parallelism") {
        match positive_integer("parallelism", v) {
            Ok(n) => opts.parallelism = Some(usize::try_from(n).unwrap_or(usize::MAX)),
            Err(e) => errors.push(e),
        }
    }

    match get("read_batch") {
        Some(v) => match positive_integer("read_batch", v) {
            Ok(n) if n <= MAX_READ_BATCH as u64 => opts.read_batch = n as usize,
            _ => errors.push(format!(
                "providers.sim.read_batch must be a whole number of servers from 1 to {MAX_READ_BATCH}, got {v}"
            )),
        },
        None => match env.read_batch() {
            Ok(n) => opts.read_batch = n.unwrap_or(DEFAULT_READ_BATCH),
            Err(e) => errors.push(e),
        },
    }

    if errors.is_empty() {
        Ok(opts)
    } else {
        Err(errors)
    }
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

    #[test]
    fn wrong_types_name_the_key() {
        let errs = parse(
            &json!({"latency_ms": -1, "fail_call": 0, "fail_servers": "a", "parallelism": "x",
                    "read_batch": 100001}),
            &SimEnv::default(),
        )
        .unwrap_err();
        assert_eq!(errs.len(), 5);
        for key in [
            "latency_ms",
            "fail_call",
            "fail_servers",
            "parallelism",
            "read_batch",
        ] {
            assert!(errs.iter().any(|e| e.contains(key)), "{key}: {errs:?}");
        }
        assert!(parse(&json!(3), &SimEnv::default()).is_err());
    }
}
