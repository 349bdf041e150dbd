//! The aws provider's settings: `providers.aws = { ... }`, checked key by key before any call.
//!
//! | key            | type                  | meaning                                                        |
//! |----------------|-----------------------|----------------------------------------------------------------|
//! | `region`       | string (required)     | EC2 region, e.g. `"us-east-1"`; zones must belong to it         |
//! | `endpoint_url` | string (http/https)   | EC2 endpoint (moto, LocalStack, a VPC endpoint); default: AWS   |
//! | `auth`         | record                | `{ method = 'api_key, api_key = ACCESS_KEY_ID, api_secret = SECRET }`; without it the standard AWS chain (environment, profile, instance role) |
//! | `api`          | record                | common contract: `timeout` (seconds per operation, default 30), `retries` (default 3); `base_url` is an alternative spelling of `endpoint_url` |
//! | `parallelism`  | integer >= 1          | calls to this provider at once (`Provider::parallelism`)        |
//! | `wait_timeout` | number >= 0 (seconds) | how long to wait for running/stopped/terminated (default 600)   |
//! | `ssh_user`     | string                | user for `get-ssh-access` (default: per OS, see `mapping`)      |
//! | `ssh_key_path` | string                | private key file for `get-ssh-access`                           |
//! | `defaults`, `features` | record        | common provider settings (read by the engine)                   |
//!
//! Unknown keys and wrong types are errors naming `providers.aws.KEY`. The secret never appears
//! in errors or `Debug` output.

use serde_json::{Map, Value};
use std::fmt;
use std::time::Duration;

pub const KNOWN_KEYS: &[&str] = &[
    "region",
    "endpoint_url",
    "auth",
    "api",
    "parallelism",
    "wait_timeout",
    "ssh_user",
    "ssh_key_path",
    "defaults",
    "features",
];

/// Static credentials from the settings' auth block.
#[derive(Clone)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticCredentials { .. }")
    }
}

#[derive(Clone, Debug)]
pub struct AwsSettings {
    pub region: String,
    pub endpoint_url: Option<String>,
    /// None: the standard AWS credential chain.
    pub credentials: Option<StaticCredentials>,
    pub timeout: Duration,
    pub retries: u32,
    pub parallelism: Option<usize>,
    pub wait_timeout: Duration,
    pub ssh_user: Option<String>,
    pub ssh_key_path: Option<String>,
}

fn non_negative_secs(key: &str, v: &Value, errors: &mut Vec<String>) -> Option<Duration> {
    match v.as_f64() {
        Some(s) if s.is_finite() && (0.0..=31_536_000.0).contains(&s) => {
            Some(Duration::from_secs_f64(s))
        }
        _ => {
            errors.push(format!(
                "providers.aws.{key} must be a number of seconds from 0 to 31536000 (a year), got {v}"
            ));
            None
        }
    }
}

fn string<'a>(key: &str, v: &'a Value, errors: &mut Vec<String>) -> Option<&'a str> {
    match v.as_str() {
        Some(s) if !s.trim().is_empty() => Some(s),
        _ => {
            errors.push(format!(
                "providers.aws.{key} must be a non-empty string, got {}",
                type_name(v)
            ));
            None
        }
    }
}

/// What a value is, without its content (it may be a secret).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(s) if s.trim().is_empty() => "an empty string",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a record",
    }
}

fn check_endpoint(key: &str, url: &str, errors: &mut Vec<String>) {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        errors.push(format!(
            "providers.aws.{key} must be an http:// or https:// URL, got {url:?}"
        ));
    }
}

/// A plausible region name: letters, digits and dashes, like `us-east-1`.
fn check_region(region: &str) -> Result<(), String> {
    let ok = region.split('-').count() >= 3
        && region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.chars().last().is_some_and(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "providers.aws.region {region:?} is not a region name like \"us-east-1\""
        ))
    }
}

/// Parses the settings; every problem is reported, each naming its key.
pub fn parse(settings: &Value) -> Result<AwsSettings, Vec<String>> {
    let empty = Map::new();
    let map = match settings {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(vec![format!(
                "providers.aws settings must be a record, got {}",
                type_name(other)
            )])
        }
    };
    let mut errors = Vec::new();
    for k in map.keys() {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            errors.push(format!(
                "providers.aws.{k}: unknown setting (known: {})",
                KNOWN_KEYS.join(", ")
            ));
        }
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());

    let region = match get("region") {
        None => {
            errors
                .push("providers.aws.region is required (e.g. region = \"us-east-1\")".to_string());
            None
        }
        Some(v) => string("region", v, &mut errors).and_then(|r| match check_region(r) {
            Ok(()) => Some(r.to_string()),
            Err(e) => {
                errors.push(e);
                None
            }
        }),
    };

    let mut endpoint_url = get("endpoint_url")
        .and_then(|v| string("endpoint_url", v, &mut errors))
        .map(str::to_string);
    if let Some(u) = &endpoint_url {
        check_endpoint("endpoint_url", u, &mut errors);
    }

    let mut timeout = Duration::from_secs(30);
    let mut retries = 3u32;
    if let Some(api) = get("api") {
        match api.as_object() {
            None => errors.push(format!(
                "providers.aws.api must be a record, got {}",
                type_name(api)
            )),
            Some(api) => {
                for k in api.keys() {
                    if !["base_url", "version", "timeout", "retries"].contains(&k.as_str()) {
                        errors.push(format!(
                            "providers.aws.api.{k}: unknown setting (known: base_url, version, timeout, retries)"
                        ));
                    }
                }
                if let Some(t) = api.get("timeout").filter(|v| !v.is_null()) {
                    if let Some(d) = non_negative_secs("api.timeout", t, &mut errors) {
                        if d.is_zero() {
                            errors.push(
                                "providers.aws.api.timeout must be more than 0 seconds".into(),
                            );
                        } else {
                            timeout = d;
                        }
                    }
                }
                if let Some(r) = api.get("retries").filter(|v| !v.is_null()) {
                    match r.as_f64() {
                        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 20.0 => retries = n as u32,
                        _ => errors.push(format!(
                            "providers.aws.api.retries must be an integer from 0 to 20, got {r}"
                        )),
                    }
                }
                if let Some(b) = api.get("base_url").filter(|v| !v.is_null()) {
                    if let Some(b) = string("api.base_url", b, &mut errors) {
                        check_endpoint("api.base_url", b, &mut errors);
                        match &endpoint_url {
                            Some(e) if e != b => errors.push(format!(
                                "providers.aws.api.base_url ({b:?}) and providers.aws.endpoint_url ({e:?}) differ: set one"
                            )),
                            _ => endpoint_url = Some(b.to_string()),
                        }
                    }
                }
            }
        }
    }

    let mut credentials = None;
    if let Some(auth) = get("auth") {
        match auth.as_object() {
            None => errors.push(format!(
                "providers.aws.auth must be a record, got {}",
                type_name(auth)
            )),
            Some(a) => {
                let method = a.get("method").and_then(Value::as_str).unwrap_or("");
                if method != "api_key" {
                    errors.push(format!(
                        "providers.aws.auth.method must be 'api_key (an access key id and secret), got {:?}",
                        method
                    ));
                }
                for k in a.keys() {
                    if !["method", "api_key", "api_secret"].contains(&k.as_str()) {
                        errors.push(format!(
                            "providers.aws.auth.{k}: not used by aws (set api_key and api_secret)"
                        ));
                    }
                }
                let key = a
                    .get("api_key")
                    .filter(|v| !v.is_null())
                    .and_then(|v| string("auth.api_key", v, &mut errors));
                let secret = a
                    .get("api_secret")
                    .filter(|v| !v.is_null())
                    .and_then(|v| string("auth.api_secret", v, &mut errors));
                match (key, secret) {
                    (Some(k), Some(s)) => {
                        credentials = Some(StaticCredentials {
                            access_key_id: k.to_string(),
                            secret_access_key: s.to_string(),
                        })
                    }
                    (None, _) if a.get("api_key").is_none_or(Value::is_null) => errors
                        .push("providers.aws.auth.api_key is required with method 'api_key".into()),
                    (_, None) if a.get("api_secret").is_none_or(Value::is_null) => errors.push(
                        "providers.aws.auth.api_secret is required with method 'api_key".into(),
                    ),
                    _ => {}
                }
            }
        }
    }

    let mut parallelism = None;
    if let Some(v) = get("parallelism") {
        match v.as_f64() {
            Some(n) if n >= 1.0 && n.fract() == 0.0 && n <= 10_000.0 => {
                parallelism = Some(n as usize)
            }
            _ => errors.push(format!(
                "providers.aws.parallelism must be a positive integer, got {v}"
            )),
        }
    }
    let wait_timeout = get("wait_timeout")
        .and_then(|v| non_negative_secs("wait_timeout", v, &mut errors))
        .unwrap_or(Duration::from_secs(600));
    let ssh_user = get("ssh_user")
        .and_then(|v| string("ssh_user", v, &mut errors))
        .map(str::to_string);
    let ssh_key_path = get("ssh_key_path")
        .and_then(|v| string("ssh_key_path", v, &mut errors))
        .map(str::to_string);
    for k in ["defaults", "features"] {
        if let Some(v) = get(k) {
            if !v.is_object() {
                errors.push(format!(
                    "providers.aws.{k} must be a record, got {}",
                    type_name(v)
                ));
            }
        }
    }

    match region {
        Some(region) if errors.is_empty() => Ok(AwsSettings {
            region,
            endpoint_url,
            credentials,
            timeout,
            retries,
            parallelism,
            wait_timeout,
            ssh_user,
            ssh_key_path,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_settings_parse() {
        let s = parse(&json!({
            "region": "eu-west-1",
            "endpoint_url": "http://127.0.0.1:5000",
            "auth": {"method": "api_key", "api_key": "AKID", "api_secret": "s3cret"},
            "api": {"timeout": 5, "retries": 1, "version": "v1"},
            "parallelism": 4,
        }))
        .unwrap();
        assert_eq!(s.region, "eu-west-1");
        assert_eq!(s.timeout, Duration::from_secs(5));
        assert_eq!(s.retries, 1);
        assert_eq!(s.parallelism, Some(4));
        assert!(!format!("{s:?}").contains("s3cret"));
    }

    #[test]
    fn every_problem_names_its_key_and_never_the_secret() {
        let errs = parse(&json!({
            "regoin": "us-east-1",
            "endpoint_url": "127.0.0.1:5000",
            "auth": {"method": "basic", "api_key": "AKID", "api_secret": 42},
            "parallelism": 0,
        }))
        .unwrap_err();
        let all = errs.join("\n");
        for needle in [
            "providers.aws.regoin: unknown setting",
            "providers.aws.region is required",
            "providers.aws.endpoint_url must be an http",
            "providers.aws.auth.method",
            "providers.aws.auth.api_secret must be a non-empty string, got a number",
            "providers.aws.parallelism must be a positive integer",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
        }
        assert!(!all.contains("42"), "{all}");
    }

    #[test]
    fn base_url_is_the_endpoint_unless_they_conflict() {
        let s = parse(&json!({"region": "us-east-1", "api": {"base_url": "http://h:1"}})).unwrap();
        assert_eq!(s.endpoint_url.as_deref(), Some("http://h:1"));
        let e = parse(&json!({"region": "us-east-1", "endpoint_url": "http://a:1", "api": {"base_url": "http://h:1"}}))
            .unwrap_err();
        assert!(e[0].contains("differ"), "{e:?}");
    }
}
