//! The upcloud provider's settings: `providers.upcloud = { ... }` and the credential variables.
//! The keys, types, defaults and constraints are declared once, in the Nickel schema
//! `providers/src/upcloud/settings.ncl` ([`SCHEMA`], compiled in); prov checks the settings
//! against it (every problem at once, each naming `providers.upcloud.KEY`, the password never
//! shown) and this module reads the checked value.
//!
//! | key                  | meaning                                                               |
//! |----------------------|-----------------------------------------------------------------------|
//! | `auth`               | `{ method = 'basic, username, password }`; else `UPCLOUD_USERNAME`/`UPCLOUD_PASSWORD` |
//! | `api.base_url`       | default `https://api.upcloud.com/1.3`                                 |
//! | `api.version`        | `"1.3"` (the contract's default `"v1"` means the same)                |
//! | `api.timeout`        | seconds per HTTP request (default 30)                                 |
//! | `api.retries`        | retries of throttled requests (default 3)                             |
//! | `parallelism`        | calls to this provider at once (default 4)                            |
//! | `poll_interval_ms`   | how often a server's state is polled while waiting (default 5000)     |
//! | `wait_timeout_secs`  | how long to wait for a server to start or stop (default 600)          |
//! | `stop_timeout_secs`  | soft-stop grace period before UpCloud stops hard (default 60)         |
//! | `login_user`         | the user created with the SSH keys (default `root`)                   |
//! | `ssh_key_path`       | private key path returned by get-ssh-access                           |
//! | `storage_size_gb`    | system disk size when a server gives no `storage.size` (default 25)   |
//! | `templates`          | `{ "os-name" = "template UUID or title" }`, merged over the built-in map |
//! | `defaults`, `features` | the common provider settings (`defaults` is read by the engine)   |
//!
//! Unknown keys are errors (a typo must not silently fall back to a default).

use base64::Engine as _;
use prov_engine::config::SettingsSchema;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub const ENV_USERNAME: &str = "UPCLOUD_USERNAME";
pub const ENV_PASSWORD: &str = "UPCLOUD_PASSWORD";
pub const DEFAULT_BASE_URL: &str = "https://api.upcloud.com/1.3";

/// The schema of `providers.upcloud`.
pub const SCHEMA: SettingsSchema = SettingsSchema::Embedded {
    name: "providers/src/upcloud/settings.ncl",
    source: include_str!("settings.ncl"),
};

/// Public OS templates by the names prov configurations use (UpCloud template UUIDs).
const TEMPLATES: &[(&str, &str)] = &[
    ("ubuntu-20.04", "01000000-0000-4000-8000-000030200200"),
    ("ubuntu-22.04", "01000000-0000-4000-8000-000030220200"),
    ("ubuntu-24.04", "01000000-0000-4000-8000-000030240200"),
];

/// Username and password. `Debug` never shows the password; only the `Authorization` header
/// value is kept for requests.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
        }
    }
    /// The HTTP basic `Authorization` header value.
    pub fn header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({:?}, <redacted>)", self.username)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpcloudOptions {
    pub base_url: String,
    pub timeout: Duration,
    pub retries: u32,
    /// `None` until credentials are given: calls then fail with an authentication error.
    pub credentials: Option<Credentials>,
    /// Where the credentials came from, for messages (never the values).
    pub credentials_source: &'static str,
    pub parallelism: usize,
    pub poll_interval: Duration,
    pub wait_timeout: Duration,
    pub stop_timeout_secs: u64,
    pub login_user: String,
    pub ssh_key_path: Option<String>,
    pub storage_size_gb: u64,
    pub templates: BTreeMap<String, String>,
}

/// The environment variables the settings fall back on (passed in, so parsing is pure).
#[derive(Debug, Clone, Default)]
pub struct UpcloudEnv {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl UpcloudEnv {
    pub fn from_process() -> UpcloudEnv {
        UpcloudEnv {
            username: std::env::var(ENV_USERNAME).ok().filter(|s| !s.is_empty()),
            password: std::env::var(ENV_PASSWORD).ok().filter(|s| !s.is_empty()),
        }
    }
}

/// The checked settings, as the schema shapes them.
#[derive(Deserialize)]
struct Checked {
    auth: Option<CheckedAuth>,
    api: CheckedApi,
    parallelism: usize,
    poll_interval_ms: u64,
    wait_timeout_secs: u64,
    stop_timeout_secs: u64,
    login_user: String,
    ssh_key_path: Option<String>,
    storage_size_gb: u64,
    templates: BTreeMap<String, String>,
}

/// No `Debug`: it holds the password.
#[derive(Deserialize)]
struct CheckedAuth {
    username: String,
    password: String,
}

#[derive(Deserialize)]
struct CheckedApi {
    base_url: String,
    timeout: f64,
    retries: u32,
}

/// Checks the settings against [`SCHEMA`] and takes the credentials from them, else from the
/// environment; every problem is reported, each naming its key. Secrets never appear in the
/// messages.
pub fn parse(settings: &Value, env: &UpcloudEnv) -> Result<UpcloudOptions, Vec<String>> {
    let c: Checked = crate::settings::read("upcloud", &SCHEMA, settings)?;
    let (credentials, credentials_source) = match (&c.auth, &env.username, &env.password) {
        (Some(a), _, _) => (
            Some(Credentials::new(&a.username, &a.password)),
            "providers.upcloud.auth",
        ),
        (None, Some(u), Some(p)) => (
            Some(Credentials::new(u, p)),
            "UPCLOUD_USERNAME/UPCLOUD_PASSWORD",
        ),
        _ => (None, ""),
    };
    let mut templates: BTreeMap<String, String> = TEMPLATES
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    templates.extend(c.templates);
    Ok(UpcloudOptions {
        base_url: c.api.base_url.trim_end_matches('/').to_string(),
        timeout: Duration::from_secs_f64(c.api.timeout),
        retries: c.api.retries,
        credentials,
        credentials_source,
        parallelism: c.parallelism,
        poll_interval: Duration::from_millis(c.poll_interval_ms),
        wait_timeout: Duration::from_secs(c.wait_timeout_secs),
        stop_timeout_secs: c.stop_timeout_secs,
        login_user: c.login_user,
        ssh_key_path: c.ssh_key_path,
        storage_size_gb: c.storage_size_gb,
        templates,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_env_and_auth_block() {
        let o = parse(&json!({}), &UpcloudEnv::default()).unwrap();
        assert_eq!(o.base_url, DEFAULT_BASE_URL);
        assert_eq!(o.retries, 3);
        assert!(o.credentials.is_none());
        let env = UpcloudEnv {
            username: Some("envuser".into()),
            password: Some("envpass".into()),
        };
        let o = parse(&json!({}), &env).unwrap();
        assert_eq!(o.credentials.as_ref().unwrap().username, "envuser");
        let o = parse(
            &json!({"auth": {"method": "basic", "username": "u", "password": "s3cret"},
                    "api": {"base_url": "http://127.0.0.1:9/1.3/", "version": "v1", "timeout": 2, "retries": 5},
                    "parallelism": 2, "templates": {"debian-12": "Debian GNU/Linux 12"}}),
            &env,
        )
        .unwrap();
        let c = o.credentials.unwrap();
        assert_eq!(c.username, "u", "the settings win over the environment");
        assert_eq!(c.header(), "Basic dTpzM2NyZXQ=");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(o.base_url, "http://127.0.0.1:9/1.3");
        assert_eq!(
            (o.timeout, o.retries, o.parallelism),
            (Duration::from_secs(2), 5, 2)
        );
        assert_eq!(o.templates["debian-12"], "Debian GNU/Linux 12");
        assert!(o.templates.contains_key("ubuntu-22.04"));
    }

    /// Each case: settings, then the `providers.upcloud.KEY` each problem names.
    #[test]
    fn every_problem_names_its_key_and_never_the_password() {
        let auth = |m: &str| json!({"method": m, "username": "u", "password": "hunter2-pw"});
        let cases: &[(Value, &[&str])] = &[
            (json!({"auth": auth("api_key")}), &["auth.method"]),
            (
                json!({"auth": {"method": "basic", "username": "u"}}),
                &["auth"],
            ),
            (
                json!({"auth": {"method": "basic", "username": "u", "password": 4242424242u64}}),
                &["auth.password"],
            ),
            (json!({"auth": "hunter2-pw"}), &["auth"]),
            (json!({"api": {"base_url": "ftp://x"}}), &["api.base_url"]),
            (json!({"api": {"version": "2.0"}}), &["api.version"]),
            (json!({"api": {"timeout": -1}}), &["api.timeout"]),
            (json!({"api": {"retries": 1.5}}), &["api.retries"]),
            (json!({"parallelism": 0}), &["parallelism"]),
            (json!({"poll_interval_ms": "fast"}), &["poll_interval_ms"]),
            (json!({"storage_size_gb": 5}), &["storage_size_gb"]),
            (json!({"login_user": ""}), &["login_user"]),
            (json!({"templates": {"debian": 12}}), &["templates.debian"]),
            (json!({"templaets": {}}), &["templaets"]),
            (
                json!({"auth": auth("api_key"),
                       "api": {"base_url": "ftp://x", "version": "2.0", "timeout": -1, "retries": 1.5},
                       "parallelism": 0, "poll_interval_ms": "fast", "templaets": {}}),
                &[
                    "api.base_url",
                    "api.retries",
                    "api.timeout",
                    "api.version",
                    "auth.method",
                    "parallelism",
                    "poll_interval_ms",
                    "templaets",
                ],
            ),
        ];
        for (settings, keys) in cases {
            let errs = parse(settings, &UpcloudEnv::default()).unwrap_err();
            assert_eq!(errs.len(), keys.len(), "{settings}: {errs:#?}");
            for (e, k) in errs.iter().zip(keys.iter()) {
                assert!(
                    e.starts_with(&format!("providers.upcloud.{k}: ")),
                    "{k}: {e}"
                );
            }
            let all = errs.join("\n");
            assert!(!all.contains("hunter2") && !all.contains("424242"), "{all}");
        }
    }

    #[test]
    fn the_key_table_is_the_schema() {
        use crate::settings::testing::{schema_keys, table_keys};
        assert_eq!(
            table_keys(include_str!("settings.rs")),
            schema_keys(&SCHEMA)
        );
    }
}
