//! The upcloud provider's settings: `providers.upcloud = { ... }` (already checked by the
//! `ProviderSettings` Nickel contract) plus the provider's own keys and the credential variables.
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
//!
//! Unknown keys are errors (a typo must not silently fall back to a default).

use base64::Engine as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub const ENV_USERNAME: &str = "UPCLOUD_USERNAME";
pub const ENV_PASSWORD: &str = "UPCLOUD_PASSWORD";
pub const DEFAULT_BASE_URL: &str = "https://api.upcloud.com/1.3";

/// Keys of the common `ProviderSettings` contract plus this provider's own.
const KNOWN_KEYS: &[&str] = &[
    "auth",
    "api",
    "defaults",
    "features",
    "parallelism",
    "poll_interval_ms",
    "wait_timeout_secs",
    "stop_timeout_secs",
    "login_user",
    "ssh_key_path",
    "storage_size_gb",
    "templates",
];

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

fn number(v: &Value) -> Option<f64> {
    v.as_f64().filter(|f| f.is_finite())
}

fn whole(key: &str, v: &Value, min: u64) -> Result<u64, String> {
    match number(v) {
        Some(f) if f >= min as f64 && f.fract() == 0.0 && f <= u32::MAX as f64 => Ok(f as u64),
        _ => Err(format!(
            "providers.upcloud.{key} must be a whole number >= {min}, got {v}"
        )),
    }
}

/// Parses the settings; every problem is reported, each naming its key. Secrets never appear
/// in the messages.
pub fn parse(settings: &Value, env: &UpcloudEnv) -> Result<UpcloudOptions, Vec<String>> {
    let empty = serde_json::Map::new();
    let map = match settings {
        Value::Object(m) => m,
        Value::Null => &empty,
        _ => return Err(vec!["providers.upcloud settings must be a record".into()]),
    };
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let mut errors = Vec::new();
    for k in map.keys() {
        if !KNOWN_KEYS.contains(&k.as_str()) {
            errors.push(format!(
                "providers.upcloud.{k}: unknown key (known: {})",
                KNOWN_KEYS.join(", ")
            ));
        }
    }
    let mut o = UpcloudOptions {
        base_url: DEFAULT_BASE_URL.to_string(),
        timeout: Duration::from_secs(30),
        retries: 3,
        credentials: None,
        credentials_source: "",
        parallelism: 4,
        poll_interval: Duration::from_secs(5),
        wait_timeout: Duration::from_secs(600),
        stop_timeout_secs: 60,
        login_user: "root".into(),
        ssh_key_path: None,
        storage_size_gb: 25,
        templates: TEMPLATES
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };

    if let Some(api) = get("api") {
        if let Some(url) = api.get("base_url").and_then(Value::as_str) {
            let url = url.trim_end_matches('/');
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 9 {
                errors.push(format!(
                    "providers.upcloud.api.base_url must be an http(s) URL, got {url:?}"
                ));
            }
            o.base_url = url.to_string();
        }
        match api.get("version").and_then(Value::as_str) {
            None | Some("1.3") | Some("v1") => {}
            Some(v) => errors.push(format!(
                "providers.upcloud.api.version {v:?} is not supported (this provider speaks UpCloud API 1.3)"
            )),
        }
        if let Some(t) = api.get("timeout") {
            match number(t) {
                Some(s) if s > 0.0 && s <= 86_400.0 => o.timeout = Duration::from_secs_f64(s),
                _ => errors.push(format!(
                    "providers.upcloud.api.timeout must be a number of seconds above 0 and at most 86400, got {t}"
                )),
            }
        }
        if let Some(r) = api.get("retries") {
            match whole("api.retries", r, 0) {
                Ok(n) => o.retries = n as u32,
                Err(e) => errors.push(e),
            }
        }
    }

    // Credentials: the settings' auth block, else the environment.
    match get("auth") {
        Some(auth) => {
            let method = auth.get("method").and_then(Value::as_str).unwrap_or("");
            let user = auth.get("username").and_then(Value::as_str);
            let pass = auth.get("password").and_then(Value::as_str);
            if method != "basic" {
                errors.push(format!(
                    "providers.upcloud.auth.method must be 'basic (UpCloud uses HTTP basic authentication), got {method:?}"
                ));
            }
            match (user, pass) {
                (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => {
                    o.credentials = Some(Credentials::new(u, p));
                    o.credentials_source = "providers.upcloud.auth";
                }
                _ => errors
                    .push("providers.upcloud.auth needs both username and password".to_string()),
            }
        }
        None => {
            if let (Some(u), Some(p)) = (&env.username, &env.password) {
                o.credentials = Some(Credentials::new(u, p));
                o.credentials_source = "UPCLOUD_USERNAME/UPCLOUD_PASSWORD";
            }
        }
    }

    let mut int = |key: &str, min: u64, set: &mut dyn FnMut(u64)| {
        if let Some(v) = get(key) {
            match whole(key, v, min) {
                Ok(n) => set(n),
                Err(e) => errors.push(e),
            }
        }
    };
    int("parallelism", 1, &mut |n| o.parallelism = n as usize);
    int("poll_interval_ms", 1, &mut |n| {
        o.poll_interval = Duration::from_millis(n)
    });
    int("wait_timeout_secs", 1, &mut |n| {
        o.wait_timeout = Duration::from_secs(n)
    });
    int("stop_timeout_secs", 1, &mut |n| o.stop_timeout_secs = n);
    int("storage_size_gb", 10, &mut |n| o.storage_size_gb = n);

    for key in ["login_user", "ssh_key_path"] {
        if let Some(v) = get(key) {
            match v.as_str() {
                Some(s) if !s.is_empty() => {
                    if key == "login_user" {
                        o.login_user = s.to_string()
                    } else {
                        o.ssh_key_path = Some(s.to_string())
                    }
                }
                _ => errors.push(format!(
                    "providers.upcloud.{key} must be a non-empty string, got {v}"
                )),
            }
        }
    }
    if let Some(t) = get("templates") {
        match t.as_object() {
            Some(m) if m.values().all(Value::is_string) => {
                for (k, v) in m {
                    o.templates
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            _ => errors.push(format!(
                "providers.upcloud.templates must map OS names to template UUIDs or titles (strings), got {t}"
            )),
        }
    }

    if errors.is_empty() {
        Ok(o)
    } else {
        Err(errors)
    }
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

    #[test]
    fn problems_name_their_keys_and_never_the_password() {
        let errs = parse(
            &json!({"auth": {"method": "api_key", "username": "u", "password": "hunter2"},
                    "api": {"base_url": "ftp://x", "version": "2.0", "timeout": -1, "retries": 1.5},
                    "parallelism": 0, "poll_interval_ms": "fast", "templaets": {}}),
            &UpcloudEnv::default(),
        )
        .unwrap_err();
        let all = errs.join("\n");
        for key in [
            "auth.method",
            "base_url",
            "api.version",
            "api.timeout",
            "api.retries",
            "parallelism",
            "poll_interval_ms",
            "templaets",
        ] {
            assert!(all.contains(key), "{key}: {all}");
        }
        assert!(!all.contains("hunter2"));
        let errs = parse(
            &json!({"auth": {"method": "basic", "username": "u"}}),
            &UpcloudEnv::default(),
        )
        .unwrap_err();
        assert!(errs[0].contains("username and password"), "{errs:?}");
    }
}
