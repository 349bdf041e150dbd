//! The UpCloud API 1.3 HTTP client: JSON requests with basic authentication, the per-request
//! timeout (`api.timeout`), retries of throttled answers (`api.retries`, [`crate::retry`]), and
//! the mapping of HTTP statuses and `{"error": {"error_code", "error_message"}}` bodies to
//! [`ExtError`] kinds. Credentials only ever travel in the `Authorization` header.

use super::settings::UpcloudOptions;
use crate::retry::{self, RetryPolicy, Verdict};
use prov_engine::traits::{ErrorKind, ExtError, ExtResult};
use serde_json::Value;
use std::time::{Duration, SystemTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }
}

/// An answer with a 2xx status: the status and the JSON body (`Null` for 204 or an empty body).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

pub struct Api {
    name: String,
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
    credentials_hint: &'static str,
    timeout: Duration,
    policy: RetryPolicy,
}

/// One attempt's failure before it becomes an `ExtError`.
struct Failure {
    kind: ErrorKind,
    message: String,
}

impl Api {
    pub fn new(name: &str, o: &UpcloudOptions) -> Api {
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(o.timeout))
            .http_status_as_error(false)
            .user_agent(concat!("prov/", env!("CARGO_PKG_VERSION")))
            .build();
        Api {
            name: name.to_string(),
            agent: ureq::Agent::new_with_config(config),
            base: o.base_url.clone(),
            auth: o.credentials.as_ref().map(|c| c.header()),
            credentials_hint: o.credentials_source,
            timeout: o.timeout,
            policy: RetryPolicy {
                retries: o.retries,
                ..RetryPolicy::default()
            },
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends one request (retrying throttled answers) and returns a 2xx answer; anything else
    /// is an error naming the provider, `op` and `target`.
    pub async fn call(
        &self,
        op: &str,
        target: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> ExtResult<Answer> {
        let err = |kind, message: String| ExtError::new(&self.name, op, target, kind, message);
        let Some(auth) = self.auth.clone() else {
            return Err(err(
                ErrorKind::Auth,
                "no credentials: set UPCLOUD_USERNAME and UPCLOUD_PASSWORD, or providers.upcloud.auth = { method = 'basic, username, password }".into(),
            ));
        };
        let url = format!("{}{}", self.base, path);
        let body = body.map(|b| b.to_string());
        let result = retry::run(&self.policy, |_| {
            let agent = self.agent.clone();
            let url = url.clone();
            let auth = auth.clone();
            let body = body.clone();
            async move {
                let sent =
                    tokio::task::spawn_blocking(move || send(&agent, method, &url, &auth, body))
                        .await;
                match sent {
                    Err(e) => Err(Verdict::Fail(Failure {
                        kind: ErrorKind::Failed,
                        message: format!("HTTP task failed: {e}"),
                    })),
                    Ok(Err(e)) => Err(Verdict::Fail(self.transport_failure(method, path, e))),
                    Ok(Ok(raw)) => self.classify(method, path, raw),
                }
            }
        })
        .await;
        match result {
            Ok(a) => Ok(a),
            Err(gave_up) => {
                let mut message = gave_up.error.message;
                if gave_up.exhausted {
                    message.push_str(&format!(
                        "; gave up after {} attempts (api.retries = {})",
                        gave_up.attempts, self.policy.retries
                    ));
                }
                Err(err(gave_up.error.kind, message))
            }
        }
    }

    fn transport_failure(&self, method: Method, path: &str, e: ureq::Error) -> Failure {
        let what = format!("{} {}{}", method.as_str(), self.base, path);
        match e {
            ureq::Error::Timeout(_) => Failure {
                kind: ErrorKind::Timeout,
                message: format!(
                    "no answer to {what} within {:?} (api.timeout)",
                    self.timeout
                ),
            },
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Failure {
                kind: ErrorKind::Timeout,
                message: format!(
                    "no answer to {what} within {:?} (api.timeout)",
                    self.timeout
                ),
            },
            other => Failure {
                kind: ErrorKind::Failed,
                message: format!("cannot reach the UpCloud API ({what}): {other}"),
            },
        }
    }

    fn classify(&self, method: Method, path: &str, raw: Raw) -> Result<Answer, Verdict<Failure>> {
        let body: Value = if raw.body.trim().is_empty() {
            Value::Null
        } else {
            match serde_json::from_str(&raw.body) {
                Ok(v) => v,
                Err(e) if (200..300).contains(&raw.status) => {
                    return Err(Verdict::Fail(Failure {
                        kind: ErrorKind::Failed,
                        message: format!(
                            "{} {path}: HTTP {} with a body that is not JSON ({e})",
                            method.as_str(),
                            raw.status
                        ),
                    }))
                }
                Err(_) => Value::Null,
            }
        };
        if (200..300).contains(&raw.status) {
            return Ok(Answer {
                status: raw.status,
                body,
            });
        }
        let code = body
            .pointer("/error/error_code")
            .and_then(Value::as_str)
            .unwrap_or("");
        let text = body
            .pointer("/error/error_message")
            .and_then(Value::as_str)
            .unwrap_or("");
        let detail = match (code, text) {
            ("", "") => format!("HTTP {}", raw.status),
            (c, "") => format!("HTTP {} {c}", raw.status),
            ("", t) => format!("HTTP {}: {t}", raw.status),
            (c, t) => format!("HTTP {} {c}: {t}", raw.status),
        };
        let fail = |kind, message: String| Verdict::Fail(Failure { kind, message });
        Err(match raw.status {
            401 | 403 => fail(
                ErrorKind::Auth,
                format!(
                    "authentication failed ({detail}); check the credentials from {}",
                    if self.credentials_hint.is_empty() {
                        "UPCLOUD_USERNAME/UPCLOUD_PASSWORD"
                    } else {
                        self.credentials_hint
                    }
                ),
            ),
            404 => fail(ErrorKind::NotFound, format!("not found ({detail})")),
            429 | 503 => Verdict::Retry {
                after: raw.retry_after,
                error: Failure {
                    kind: if raw.status == 429 {
                        ErrorKind::Throttled
                    } else {
                        ErrorKind::Failed
                    },
                    message: if raw.status == 429 {
                        format!("throttled by the UpCloud API ({detail})")
                    } else {
                        format!("the UpCloud API is unavailable ({detail})")
                    },
                },
            },
            400 | 422 => fail(ErrorKind::Invalid, format!("request refused ({detail})")),
            _ => fail(ErrorKind::Failed, detail),
        })
    }
}

/// What came back, before classification.
struct Raw {
    status: u16,
    body: String,
    retry_after: Option<Duration>,
}

/// The blocking HTTP exchange (run on the blocking pool).
fn send(
    agent: &ureq::Agent,
    method: Method,
    url: &str,
    auth: &str,
    body: Option<String>,
) -> Result<Raw, ureq::Error> {
    let resp = match method {
        Method::Get => agent
            .get(url)
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .call()?,
        Method::Delete => agent
            .delete(url)
            .header("Authorization", auth)
            .header("Accept", "application/json")
            .call()?,
        Method::Post | Method::Put => {
            let b = if method == Method::Post {
                agent.post(url)
            } else {
                agent.put(url)
            };
            let b = b
                .header("Authorization", auth)
                .header("Accept", "application/json");
            match body {
                Some(text) => b.content_type("application/json").send(text.as_bytes())?,
                None => b.send_empty()?,
            }
        }
    };
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry::parse_retry_after(v, SystemTime::now()));
    let body = resp.into_body().read_to_string()?;
    Ok(Raw {
        status,
        body,
        retry_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upcloud::settings::{parse, UpcloudEnv};
    use serde_json::json;

    /// The HTTPS path (rustls with ring) is built and used: a peer that does not speak TLS is a
    /// clear failure, not a panic over a missing crypto provider.
    #[tokio::test]
    async fn https_to_a_peer_without_tls_is_a_clear_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in listener.incoming().flatten() {
                use std::io::Write;
                let mut c = c;
                let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
            }
        });
        let o = parse(
            &json!({"auth": {"method": "basic", "username": "u", "password": "p4ssw0rd"},
                    "api": {"base_url": format!("https://127.0.0.1:{port}/1.3"), "timeout": 5, "retries": 0}}),
            &UpcloudEnv::default(),
        )
        .unwrap();
        let api = Api::new("upcloud", &o);
        let e = api
            .call("get-zones", None, Method::Get, "/zone", None)
            .await
            .unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed, "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(
                "upcloud: get-zones: cannot reach the UpCloud API (GET https://127.0.0.1:"
            ),
            "{text}"
        );
        assert!(!text.contains("p4ssw0rd"), "{text}");
    }
}
