//! The aws provider's settings: `providers.aws = { ... }`, checked before any call. The keys,
//! types, defaults and constraints are declared once, in the Nickel schema
//! `providers/src/aws/settings.ncl` ([`SCHEMA`], compiled in); prov checks the settings against
//! it (every problem at once, each naming `providers.aws.KEY`) and this module reads the checked
//! value, refusing only what one key's contract cannot see: an `api.base_url` that differs from
//! `endpoint_url`.
//!
//! | key            | type                  | meaning                                                        |
//! |----------------|-----------------------|----------------------------------------------------------------|
//! | `region`       | string (required)     | EC2 region, e.g. `"us-east-1"`; zones must belong to it         |
//! | `endpoint_url` | string (http/https)   | EC2 endpoint (moto, LocalStack, a VPC endpoint); default: AWS   |
//! | `auth`         | record                | `{ method = 'api_key, api_key = ACCESS_KEY_ID, api_secret = SECRET }`; without it the standard AWS chain (environment, profile, instance role) |
//! | `api`          | record                | `timeout` (seconds per operation, above 0, default 30), `retries` (0 to 20, default 3), `version` (ignored); `base_url` is an alternative spelling of `endpoint_url` |
//! | `parallelism`  | integer 1..=10000     | calls to this provider at once (`Provider::parallelism`)        |
//! | `wait_timeout` | seconds, 0..=31536000 | how long to wait for running/stopped/terminated (default 600)   |
//! | `ssh_user`     | string                | user for `get-ssh-access` (default: per OS, see `mapping`)      |
//! | `ssh_key_path` | string                | private key file for `get-ssh-access`                           |
//! | `defaults`, `features` | record        | common provider settings (read by the engine)                   |
//!
//! Unknown keys and wrong types are errors naming `providers.aws.KEY`. The secret never appears
//! in errors or `Debug` output.

use prov_engine::config::SettingsSchema;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;
use std::time::Duration;

/// The schema of `providers.aws`.
pub const SCHEMA: SettingsSchema = SettingsSchema::Embedded {
    name: "providers/src/aws/settings.ncl",
    source: include_str!("settings.ncl"),
};

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

/// The checked settings, as the schema shapes them.
#[derive(Deserialize)]
struct Checked {
    region: String,
    endpoint_url: Option<String>,
    auth: Option<CheckedAuth>,
    api: CheckedApi,
    parallelism: Option<usize>,
    wait_timeout: f64,
    ssh_user: Option<String>,
    ssh_key_path: Option<String>,
}

/// No `Debug`: it holds the secret.
#[derive(Deserialize)]
struct CheckedAuth {
    api_key: String,
    api_secret: String,
}

#[derive(Deserialize)]
struct CheckedApi {
    base_url: Option<String>,
    timeout: f64,
    retries: u32,
}

/// Checks the settings against [`SCHEMA`]; every problem is reported, each naming its key.
pub fn parse(settings: &Value) -> Result<AwsSettings, Vec<String>> {
    let c: Checked = crate::settings::read("aws", &SCHEMA, settings)?;
    let endpoint_url = match (c.endpoint_url, c.api.base_url) {
        (Some(e), Some(b)) if e != b => {
            return Err(vec![format!(
                "providers.aws.api.base_url ({b:?}) and providers.aws.endpoint_url ({e:?}) differ: set one"
            )])
        }
        (e, b) => e.or(b),
    };
    Ok(AwsSettings {
        region: c.region,
        endpoint_url,
        credentials: c.auth.map(|a| StaticCredentials {
            access_key_id: a.api_key,
            secret_access_key: a.api_secret,
        }),
        timeout: Duration::from_secs_f64(c.api.timeout),
        retries: c.api.retries,
        parallelism: c.parallelism,
        wait_timeout: Duration::from_secs_f64(c.wait_timeout),
        ssh_user: c.ssh_user,
        ssh_key_path: c.ssh_key_path,
    })
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

    /// Each case: settings, then the `providers.aws.KEY` each problem names.
    #[test]
    fn every_problem_names_its_key_and_never_the_secret() {
        let ok = || json!({"region": "us-east-1"});
        let with = |k: &str, v: Value| {
            let mut s = ok();
            s[k] = v;
            s
        };
        let auth =
            |secret: Value| json!({"method": "api_key", "api_key": "AKID", "api_secret": secret});
        let cases: &[(Value, &[&str])] = &[
            (json!({}), &["region"]),
            (json!({"region": 3}), &["region"]),
            (json!({"region": "Europe"}), &["region"]),
            (
                with("endpoint_url", json!("127.0.0.1:5000")),
                &["endpoint_url"],
            ),
            (
                with("auth", auth(json!(4242424242u64))),
                &["auth.api_secret"],
            ),
            (with("auth", auth(json!(""))), &["auth.api_secret"]),
            (
                with(
                    "auth",
                    json!({"method": "basic", "api_key": "AKID", "api_secret": "s3cret-x"}),
                ),
                &["auth.method"],
            ),
            (
                with("auth", json!({"method": "api_key", "api_key": "AKID"})),
                &["auth"],
            ),
            (with("auth", json!("s3cret-x")), &["auth"]),
            (with("api", json!({"timeout": 0})), &["api.timeout"]),
            (with("api", json!({"retries": 21})), &["api.retries"]),
            (with("parallelism", json!(0)), &["parallelism"]),
            (with("wait_timeout", json!(-1)), &["wait_timeout"]),
            (with("ssh_user", json!("")), &["ssh_user"]),
            (with("regoin", json!("us-east-1")), &["regoin"]),
            (
                json!({"regoin": "us-east-1", "endpoint_url": "127.0.0.1:5000",
                       "auth": {"method": "basic", "api_key": "AKID", "api_secret": 4242424242u64},
                       "parallelism": 0}),
                &[
                    "auth.api_secret",
                    "auth.method",
                    "endpoint_url",
                    "parallelism",
                    "region",
                    "regoin",
                ],
            ),
        ];
        for (settings, keys) in cases {
            let errs = parse(settings).unwrap_err();
            assert_eq!(errs.len(), keys.len(), "{settings}: {errs:#?}");
            for (e, k) in errs.iter().zip(keys.iter()) {
                assert!(e.starts_with(&format!("providers.aws.{k}: ")), "{k}: {e}");
            }
            let all = errs.join("\n");
            assert!(!all.contains("s3cret") && !all.contains("424242"), "{all}");
        }
        let errs = parse(&json!({"regoin": "us-east-1"})).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("providers.aws.regoin: unknown setting")),
            "{errs:?}"
        );
    }

    #[test]
    fn the_key_table_is_the_schema() {
        use crate::settings::testing::{schema_keys, table_keys};
        assert_eq!(
            table_keys(include_str!("settings.rs")),
            schema_keys(&SCHEMA)
        );
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
