//! Sensitive values: the redaction markers, which paths are secret, and scrubbing secrets out of values and text (a leaf beside `diff`).

use crate::diff::AttrDiff;
use serde_json::Value;

/// What is shown instead of a sensitive value (renderers print it unquoted).
pub const REDACTED: &str = "(sensitive value)";
/// What a diff shows as the new side of a sensitive value that changed: that it changed, not how.
pub const REDACTED_CHANGED: &str = "(sensitive value changed)";

/// Whether a shown string is one of the redaction markers (printed bare, not as a JSON string).
pub fn is_marker(s: &str) -> bool {
    s == REDACTED || s == REDACTED_CHANGED
}

/// Whether `path` is, or lies under, one of the sensitive `paths`.
pub fn is_sensitive(path: &str, paths: &[String]) -> bool {
    paths.iter().any(|p| {
        path == p
            || path
                .strip_prefix(p.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Replaces the value at every sensitive path that exists in `v`.
pub fn redact_value(v: &mut Value, paths: &[String]) {
    for p in paths {
        let parts: Vec<&str> = p.split('.').collect();
        redact_at(v, &parts);
    }
}

fn redact_at(v: &mut Value, parts: &[&str]) {
    redact_marked(v, parts, REDACTED);
}

/// Puts `marker` at `parts` in `v`. A string met with path left is a document (JSON, or a
/// multi-line YAML mapping or list: plans diff those by key path): the secret inside it is
/// replaced and the document written back as compact JSON; a string that is no document is
/// replaced whole, since where the secret sits in it cannot be told.
fn redact_marked(v: &mut Value, parts: &[&str], marker: &str) {
    let Some((head, rest)) = parts.split_first() else {
        *v = Value::String(marker.into());
        return;
    };
    if let Value::String(s) = v {
        if is_marker(s) {
            return;
        }
        *v = match crate::diff::document(s) {
            Some(mut doc) => {
                redact_marked(&mut doc, parts, marker);
                Value::String(doc.to_string())
            }
            None => Value::String(marker.into()),
        };
        return;
    }
    let next = match v {
        Value::Object(o) => o.get_mut(*head),
        Value::Array(a) => head.parse::<usize>().ok().and_then(|n| a.get_mut(n)),
        _ => None,
    };
    if let Some(n) = next {
        redact_marked(n, rest, marker);
    }
}

/// The value at `parts` in `v`, looking into documents held in strings.
fn value_at(v: &Value, parts: &[&str]) -> Option<Value> {
    let Some((head, rest)) = parts.split_first() else {
        return Some(v.clone());
    };
    match v {
        Value::String(s) => value_at(&crate::diff::document(s)?, parts),
        Value::Object(o) => value_at(o.get(*head)?, rest),
        Value::Array(a) => value_at(a.get(head.parse::<usize>().ok()?)?, rest),
        _ => None,
    }
}

/// Redacts one attribute diff, rooted at the resource.
pub fn redact_diff(d: &mut AttrDiff, paths: &[String]) {
    if is_sensitive(&d.path, paths) {
        let changed = d.before.is_some() && d.after.is_some();
        if d.before.is_some() {
            d.before = Some(Value::String(REDACTED.into()));
        }
        if d.after.is_some() {
            let shown = if changed { REDACTED_CHANGED } else { REDACTED };
            d.after = Some(Value::String(shown.into()));
        }
        return;
    }
    // A diff on a parent (an object added or removed whole, a document in a string) may hold
    // a sensitive child; one that changed says so.
    let prefix = format!("{}.", d.path);
    for inner in paths.iter().filter_map(|p| p.strip_prefix(&prefix)) {
        let parts: Vec<&str> = inner.split('.').collect();
        let (b, a) = (
            d.before.as_ref().and_then(|v| value_at(v, &parts)),
            d.after.as_ref().and_then(|v| value_at(v, &parts)),
        );
        let changed = b.is_some() && a.is_some() && b != a;
        if let Some(v) = &mut d.before {
            redact_marked(v, &parts, REDACTED);
        }
        if let Some(v) = &mut d.after {
            let marker = if changed { REDACTED_CHANGED } else { REDACTED };
            redact_marked(v, &parts, marker);
        }
    }
}

/// The string values at `paths` in `v` (whole, or leaves of an object or list there): what a
/// secret looks like, to scrub it from text that is not laid out by path (provider answers,
/// error messages). Strings shorter than 4 characters are left out: scrubbing them would hide
/// unrelated text.
pub fn secret_values(v: &Value, paths: &[String], out: &mut Vec<String>) {
    fn leaves(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.chars().count() >= 4 && !is_marker(s) && !out.contains(s) => {
                out.push(s.clone())
            }
            Value::Object(o) => o.values().for_each(|x| leaves(x, out)),
            Value::Array(a) => a.iter().for_each(|x| leaves(x, out)),
            _ => {}
        }
    }
    for p in paths {
        let parts: Vec<&str> = p.split('.').collect();
        if let Some(x) = value_at(v, &parts) {
            leaves(&x, out);
        }
    }
}

/// The secrets a record holds: values at its sensitive paths in its configuration, attributes
/// and outputs.
pub fn record_secrets(r: &prov_state::ResourceRecord) -> Vec<String> {
    let mut out = Vec::new();
    for v in [&r.config, &r.attributes, &r.outputs] {
        secret_values(v, &r.sensitive_paths, &mut out);
    }
    out
}

/// Whether a setting's key names a secret value (`password`, `token`, `api_key`...): also what
/// exec providers blank out of their error messages.
pub fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    [
        "password",
        "secret",
        "token",
        "api_key",
        "private_key",
        "credential",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Whether a provider setting's key names a credential (`auth.api_key`, `password`, `token`...).
pub(crate) fn is_credential_key(k: &str) -> bool {
    is_secret_key(k) || k.to_ascii_lowercase().contains("auth")
}

/// The credentials among provider settings (`providers.NAME...`): string values under a key
/// that names one.
pub fn provider_secrets(providers: &serde_json::Map<String, Value>, out: &mut Vec<String>) {
    fn walk(v: &Value, under: bool, out: &mut Vec<String>) {
        match v {
            Value::String(s) if under && s.chars().count() >= 4 && !out.contains(s) => {
                out.push(s.clone())
            }
            // `auth.method` names the kind of credential, not one.
            Value::Object(o) => o
                .iter()
                .filter(|(k, _)| k.as_str() != "method")
                .for_each(|(k, x)| walk(x, under || is_credential_key(k), out)),
            Value::Array(a) => a.iter().for_each(|x| walk(x, under, out)),
            _ => {}
        }
    }
    providers.values().for_each(|v| walk(v, false, out));
}

/// `text` with every occurrence of a secret replaced by [`REDACTED`].
pub fn scrub_text(text: &str, secrets: &[String]) -> String {
    let mut s = text.to_string();
    for x in secrets {
        if s.contains(x.as_str()) {
            s = s.replace(x.as_str(), REDACTED);
        }
    }
    s
}

/// Every string in `v` (values and keys' values, at any depth) with its secrets scrubbed.
pub fn scrub_value(v: &mut Value, secrets: &[String]) {
    if secrets.is_empty() {
        return;
    }
    match v {
        Value::String(s) if secrets.iter().any(|x| s.contains(x.as_str())) => {
            *s = scrub_text(s, secrets);
        }
        Value::Object(o) => o.values_mut().for_each(|x| scrub_value(x, secrets)),
        Value::Array(a) => a.iter_mut().for_each(|x| scrub_value(x, secrets)),
        _ => {}
    }
}

/// A server as its provider reports it, fit to show: the fields at sensitive paths (as the
/// record names them: `tags.token`, `extra.x`, `hostname`) redacted, and any other string that
/// holds one of `secrets` scrubbed (a provider may report a secret under another name).
pub fn redact_server_info(
    info: &crate::traits::ServerInfo,
    paths: &[String],
    secrets: &[String],
) -> crate::traits::ServerInfo {
    let mut i = info.clone();
    for (k, v) in i.tags.iter_mut() {
        if is_sensitive(&format!("tags.{k}"), paths)
            || secrets.iter().any(|x| v.contains(x.as_str()))
        {
            *v = REDACTED.to_string();
        }
    }
    for (name, field) in [
        ("hostname", &mut i.hostname),
        ("plan", &mut i.plan),
        ("zone", &mut i.zone),
        ("os", &mut i.os),
    ] {
        if is_sensitive(name, paths) {
            *field = REDACTED.to_string();
        } else {
            *field = scrub_text(field, secrets);
        }
    }
    for (name, field) in [
        ("public_ip", &mut i.public_ip),
        ("private_ip", &mut i.private_ip),
    ] {
        if let Some(f) = field {
            *f = if is_sensitive(name, paths) {
                REDACTED.to_string()
            } else {
                scrub_text(f, secrets)
            };
        }
    }
    let extra: Vec<String> = paths
        .iter()
        .filter_map(|p| p.strip_prefix("extra.").map(str::to_string))
        .collect();
    if is_sensitive("extra", paths) {
        i.extra = Value::String(REDACTED.into());
    }
    redact_value(&mut i.extra, &extra);
    scrub_value(&mut i.extra, secrets);
    for r in &mut i.firewall_rules {
        for f in [&mut r.source, &mut r.destination].into_iter().flatten() {
            *f = scrub_text(f, secrets);
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redacts_paths_and_children() {
        let paths = vec!["settings.password".to_string(), "tags.token".to_string()];
        let mut v =
            json!({"settings": {"password": "hunter2", "user": "u"}, "tags": {"token": "t"}});
        redact_value(&mut v, &paths);
        assert_eq!(
            v,
            json!({"settings": {"password": REDACTED, "user": "u"}, "tags": {"token": REDACTED}})
        );
        assert!(is_sensitive("settings.password", &paths));
        assert!(is_sensitive("settings.password.x", &paths));
        assert!(!is_sensitive("settings.passwords", &paths));
        let mut d = AttrDiff {
            path: "settings".into(),
            before: None,
            after: Some(json!({"password": "p"})),
            unknown: false,
            forces_replacement: false,
        };
        redact_diff(&mut d, &paths);
        assert_eq!(d.after, Some(json!({"password": REDACTED})));
        // A changed secret says so, without either value.
        let mut d = AttrDiff {
            path: "tags.token".into(),
            before: Some(json!("old-secret")),
            after: Some(json!("new-secret")),
            unknown: false,
            forces_replacement: false,
        };
        redact_diff(&mut d, &paths);
        assert_eq!(d.before, Some(json!(REDACTED)));
        assert_eq!(d.after, Some(json!(REDACTED_CHANGED)));
    }

    #[test]
    fn secrets_inside_documents_in_strings() {
        let paths = vec!["settings.conf.db.password".to_string()];
        let mut v =
            json!({"settings": {"conf": r#"{"db":{"password":"pw-1","pool":5}}"#, "note": "x"}});
        redact_value(&mut v, &paths);
        assert_eq!(
            v["settings"]["conf"],
            json!(r#"{"db":{"password":"(sensitive value)","pool":5}}"#)
        );
        // Text that is no document is hidden whole.
        let mut v = json!({"settings": {"conf": "password=pw-1"}});
        redact_value(&mut v, &paths);
        assert_eq!(v["settings"]["conf"], json!(REDACTED));
        // A diff of the document says the secret changed, without it.
        let mut d = AttrDiff {
            path: "settings.conf".into(),
            before: Some(json!("db:\n  password: pw-1\n  pool: 5\n")),
            after: Some(json!("db:\n  password: pw-2\n  pool: 5\n")),
            unknown: false,
            forces_replacement: false,
        };
        redact_diff(&mut d, &paths);
        let shown = format!("{:?} {:?}", d.before, d.after);
        assert!(!shown.contains("pw-"), "{shown}");
        assert!(shown.contains(REDACTED_CHANGED), "{shown}");
    }

    #[test]
    fn secrets_are_found_by_path_and_scrubbed_by_value() {
        let paths = vec!["settings".to_string(), "tags.token".to_string()];
        let mut found = Vec::new();
        secret_values(
            &json!({"settings": {"a": "pw-1234", "n": [1, "xy"]}, "tags": {"token": "tok-5678", "team": "data"}}),
            &paths,
            &mut found,
        );
        assert_eq!(found, vec!["pw-1234", "tok-5678"]);
        assert_eq!(
            scrub_text("auth: Bearer tok-5678 failed", &found),
            format!("auth: Bearer {REDACTED} failed")
        );
        let mut v = json!({"detail": ["x pw-1234", {"k": "tok-5678"}], "n": 3});
        scrub_value(&mut v, &found);
        assert_eq!(
            v,
            json!({"detail": [format!("x {REDACTED}"), {"k": REDACTED}], "n": 3})
        );
        let mut creds = Vec::new();
        let providers = json!({"aws": {"region": "eu-1", "auth": {"api_key": "AKIA-1", "method": "api_key"},
                                       "secret_access_key": "s3cr3t", "defaults": {"zone": "z-1"}}});
        provider_secrets(providers.as_object().unwrap(), &mut creds);
        assert_eq!(creds, vec!["AKIA-1", "s3cr3t"]);
    }

    #[test]
    fn server_info_is_redacted_by_path_and_value() {
        let info = crate::traits::ServerInfo {
            id: "i-1".into(),
            hostname: "db".into(),
            status: crate::traits::ServerStatus::Running,
            plan: "small".into(),
            zone: "z".into(),
            os: "os".into(),
            public_ip: None,
            private_ip: Some("10.0.0.1".into()),
            tags: [
                ("token", "tok-5678"),
                ("copy", "Bearer tok-5678"),
                ("team", "data"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            firewall_rules: vec![],
            extra: json!({"note": "has tok-5678", "x": 1}),
        };
        let r = redact_server_info(&info, &["tags.token".into()], &["tok-5678".into()]);
        assert_eq!(r.tags["token"], REDACTED);
        assert_eq!(r.tags["copy"], REDACTED);
        assert_eq!(r.tags["team"], "data");
        assert_eq!(r.extra, json!({"note": format!("has {REDACTED}"), "x": 1}));
        assert_eq!(r.private_ip.as_deref(), Some("10.0.0.1"));
    }
}
