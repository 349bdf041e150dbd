//! Extension settings checked against a Nickel schema, every problem at once: the one way a
//! provider's `providers.NAME` (built-in: a schema compiled into the binary; an extension
//! directory: its `schemas/settings.ncl`) is declared and checked.
//!
//! A schema is a Nickel file that evaluates to a closed record contract; it may import the
//! schema library (`prov/schemas.ncl`, e.g. its `ProviderAuth`, `ProviderApi`,
//! `ProviderDefaults`, `ProviderFeatures`). [`check_settings`] applies it to the settings as the
//! workspace evaluated them and returns the checked value with the schema's defaults filled.
//!
//! Nickel stops at the first blame, so when the whole check fails the value is checked again
//! piece by piece, each piece in an evaluation of its own: every key the schema does not name
//! is a problem of its own (the schema's field names come from Nickel), then every field is
//! forced on its own (`(value | schema).KEY`: Nickel checks a record contract's fields lazily,
//! so only that field's contract runs), and a failing record field is split into its fields the
//! same way, unless the record's own shape (an unknown field) is what fails. What is wrong with
//! one field is Nickel's diagnostic, rendered without quoting the value (see below); a problem
//! no field shows on its own (a constraint over several fields) is the whole check's.
//!
//! Secrets: the evaluated source holds the value, so diagnostics never quote it (only the
//! schema's text); the piece-by-piece checks see credentials (values under a key such as
//! `auth`, `password`, `token`) masked, strings as stars of the same length and other values
//! as a neutral value of the same type, and every message is scrubbed of the credentials'
//! strings besides.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};

use super::{eval, library_copy, nickel_literal, nickel_string, ConfigError};

/// A settings schema: a Nickel file evaluating to a closed record contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettingsSchema {
    /// Compiled into the binary: the name messages show (its path in prov's sources, e.g.
    /// `providers/src/aws/settings.ncl`) and its text.
    Embedded {
        name: &'static str,
        source: &'static str,
    },
    /// A file, e.g. an extension directory's `schemas/settings.ncl`.
    File(PathBuf),
}

impl SettingsSchema {
    /// The name messages give the schema.
    pub fn display(&self) -> String {
        match self {
            SettingsSchema::Embedded { name, .. } => (*name).to_string(),
            SettingsSchema::File(p) => p.display().to_string(),
        }
    }
}

/// One problem with the settings: where (a dotted path below the settings, empty for the
/// whole record) and what, in Nickel's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    pub path: String,
    pub message: String,
}

impl SettingsProblem {
    /// `SECTION.PATH: MESSAGE`, e.g. `providers.aws.region: ...`.
    pub fn under(&self, section: &str) -> String {
        if self.path.is_empty() {
            format!("{section}: {}", self.message)
        } else {
            format!("{section}.{}: {}", self.path, self.message)
        }
    }
}

/// A scratch directory with the schema library and the schema, removed when dropped.
struct Scratch {
    /// A private directory (0700, a random name created exclusively), removed on drop.
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    schema: PathBuf,
    /// What the schema's path is replaced by in messages.
    shown: String,
}

impl Scratch {
    fn new(schema: &SettingsSchema) -> Result<Scratch, ConfigError> {
        let tmp = library_copy("prov-settings-")?;
        let dir = tmp.path().to_path_buf();
        let path = match schema {
            SettingsSchema::Embedded { source, .. } => {
                let p = dir.join("settings.ncl");
                std::fs::write(&p, source).map_err(|source| ConfigError::Io {
                    path: p.clone(),
                    source,
                })?;
                p
            }
            SettingsSchema::File(p) => p.canonicalize().map_err(|source| ConfigError::Io {
                path: p.clone(),
                source,
            })?,
        };
        Ok(Scratch {
            _tmp: tmp,
            dir,
            schema: path,
            shown: schema.display(),
        })
    }

    /// Evaluates `body` with `s` bound to the schema; errors in one line, the value unquoted.
    fn eval(&self, body: &str) -> Result<Value, String> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let main = self.dir.join(format!(
            "check-{}.ncl",
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let import = nickel_string(&self.schema.to_string_lossy());
        let source = format!("let s = import {import} in\n{body}\n");
        std::fs::write(&main, source).map_err(|e| format!("{}: {e}", main.display()))?;
        let out = eval::run(eval::Job {
            workspace_dir: self.dir.clone(),
            main: main.clone(),
            lib_dir: self.dir.clone(),
            contract: None,
            rust_check: false,
            color: false,
            check_value_depth: false,
            brief: true,
        });
        let _ = std::fs::remove_file(&main);
        out.map(|o| o.value).map_err(|e| self.tidy(&e.to_string()))
    }

    /// `text` with the scratch paths replaced by what readers know them as.
    fn tidy(&self, text: &str) -> String {
        let dir = format!("{}/", self.dir.display());
        text.replace(&self.schema.display().to_string(), &self.shown)
            .replace(&dir, "")
    }
}

/// A check's answer: the settings with the schema's defaults, or every problem.
pub type Checked = Result<Value, Vec<SettingsProblem>>;

/// Answers given or being given in this process, by schema and value: the engine checks the
/// settings of every provider in use when it loads a workspace, and the provider checks them
/// again when it is built (e.g. by a test, without the engine, or by a plan's refresh started
/// beside the engine's check); the second asks no Nickel, and waits for the first if it is
/// still being evaluated.
type Memo = Vec<(String, String, Arc<OnceLock<Checked>>)>;
static MEMO: Mutex<Memo> = Mutex::new(Vec::new());

/// The memo's cell for `key`, added when absent.
fn memo_cell(schema: String, value: String) -> Arc<OnceLock<Checked>> {
    let mut m = MEMO.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, _, c)) = m.iter().find(|(s, v, _)| (s, v) == (&schema, &value)) {
        return c.clone();
    }
    // A handful of providers per process; the bound keeps a long-lived process small.
    if m.len() >= 64 {
        m.clear();
    }
    let cell = Arc::new(OnceLock::new());
    m.push((schema, value, cell.clone()));
    cell
}

/// Applies `schema` to `value` (null counts as `{}`) and returns the checked value with the
/// schema's defaults filled, or every problem found (see the module documentation).
pub fn check_settings(schema: &SettingsSchema, value: &Value) -> Checked {
    memo_cell(schema.display(), value.to_string())
        .get_or_init(|| check_uncached(schema, value))
        .clone()
}

fn remember(schema: String, value: String, checked: Checked) {
    let _ = memo_cell(schema, value).set(checked);
}

/// [`check_settings`] for a workspace: the checked value of a compiled-in schema that accepted
/// the settings is kept in the workspace's cache (`.prov/cache/settings.json`, mode 0600), so an
/// unchanged provider configuration costs no Nickel evaluation on the next command. Not for
/// confined evaluations (the cache is the repository's to write) nor extension schemas (their
/// imports are not covered by the key).
pub fn check_settings_in(
    workspace: &Path,
    confined: bool,
    schema: &SettingsSchema,
    value: &Value,
) -> Checked {
    let key = match schema {
        SettingsSchema::Embedded { name, source } if !confined => {
            super::cache::settings_key(name, source, value)
        }
        _ => return check_settings(schema, value),
    };
    if let Some(checked) = super::cache::load_settings(workspace, &key) {
        remember(schema.display(), value.to_string(), Ok(checked.clone()));
        return Ok(checked);
    }
    let checked = check_settings(schema, value);
    if let Ok(v) = &checked {
        super::cache::store_settings(workspace, &key, v);
    }
    checked
}

/// The values checked with Nickel, in order (tests count evaluations by them).
#[cfg(test)]
static EVALUATED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn check_uncached(schema: &SettingsSchema, value: &Value) -> Checked {
    #[cfg(test)]
    EVALUATED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(value.to_string());
    let whole = |message: String| {
        vec![SettingsProblem {
            path: String::new(),
            message,
        }]
    };
    let value = match value {
        Value::Null => Value::Object(Map::new()),
        Value::Object(_) => value.clone(),
        other => return Err(whole(format!("must be a record, got {}", type_name(other)))),
    };
    let scratch = Scratch::new(schema).map_err(|e| whole(e.to_string()))?;
    if let Ok(checked) = scratch.eval(&format!("({}) | s", nickel_literal(&value))) {
        return Ok(checked);
    }
    let mut secrets = Vec::new();
    crate::sensitive::provider_secrets(
        &Map::from_iter([("_".to_string(), value.clone())]),
        &mut secrets,
    );
    let masked = mask_credentials(&value, false);
    let mut problems = piece_by_piece(&scratch, &masked);
    if problems.is_empty() {
        let message = match scratch.eval(&format!("({}) | s", nickel_literal(&masked))) {
            Err(e) => e,
            // Only the real credentials fail: their content is what the schema refuses.
            Ok(_) => format!(
                "{} refuses the value of a credential (not shown)",
                scratch.shown
            ),
        };
        problems = whole(message);
    }
    for p in &mut problems {
        p.message = crate::sensitive::scrub_text(&p.message, &secrets);
    }
    Err(problems)
}

/// What a value is, without its content.
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "a record",
    }
}

/// `v` with every credential (a value under a credential key, `auth.method` aside) replaced by
/// a stand-in of the same shape: strings by as many stars, numbers by 0, booleans by false.
fn mask_credentials(v: &Value, under: bool) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| {
                    let secret = k != "method" && (under || crate::sensitive::is_credential_key(k));
                    (k.clone(), mask_credentials(x, secret))
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|x| mask_credentials(x, under)).collect()),
        _ if !under => v.clone(),
        Value::String(s) => Value::String("*".repeat(s.chars().count())),
        Value::Number(_) => Value::from(0),
        Value::Bool(_) => Value::Bool(false),
        Value::Null => Value::Null,
    }
}

/// The problems of `value`, each found by an evaluation of its own.
fn piece_by_piece(scratch: &Scratch, value: &Value) -> Vec<SettingsProblem> {
    let fields = match scratch
        .eval("{ all = std.record.fields_with_opts s, present = std.record.fields s }")
    {
        Ok(f) => f,
        Err(e) => {
            return vec![SettingsProblem {
                path: String::new(),
                message: e,
            }]
        }
    };
    let names = |k: &str| -> BTreeSet<String> {
        fields[k]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let (all, present) = (names("all"), names("present"));
    let map = value.as_object().cloned().unwrap_or_default();
    let mut problems = Vec::new();
    let mut known = Map::new();
    for (k, v) in map {
        if all.contains(&k) {
            known.insert(k, v);
        } else {
            let list = all.iter().cloned().collect::<Vec<_>>().join(", ");
            problems.push(SettingsProblem {
                path: k,
                message: format!("unknown setting (known: {list})"),
            });
        }
    }
    let literal = nickel_literal(&Value::Object(known.clone()));
    // The keys given, then the ones the schema requires or defaults (a missing one fails).
    let mut keys: Vec<String> = known.keys().cloned().collect();
    keys.extend(present.into_iter().filter(|k| !known.contains_key(k)));
    for k in keys {
        let v = known.get(&k).cloned().unwrap_or(Value::Null);
        check_path(scratch, &literal, &[k], &v, &mut problems);
    }
    problems.sort_by(|a, b| a.path.cmp(&b.path));
    problems
}

/// Checks the field at `path` of `(literal | s)` on its own; splits a failing record.
fn check_path(
    scratch: &Scratch,
    literal: &str,
    path: &[String],
    v: &Value,
    problems: &mut Vec<SettingsProblem>,
) {
    let access: String = path
        .iter()
        .map(|p| format!(".{}", nickel_string(p)))
        .collect();
    let deep = match scratch.eval(&format!("std.deep_seq (({literal}) | s){access} null")) {
        Ok(_) => return,
        Err(e) => e,
    };
    let at = |message: String| SettingsProblem {
        path: path.join("."),
        message,
    };
    let Some(fields) = v.as_object().filter(|o| !o.is_empty()) else {
        problems.push(at(deep));
        return;
    };
    // The record's own contract (its shape: unknown fields) fails before any field's.
    if let Err(e) = scratch.eval(&format!("std.seq (({literal}) | s){access} null")) {
        problems.push(at(e));
        return;
    }
    let before = problems.len();
    for (k, x) in fields {
        let mut sub = path.to_vec();
        sub.push(k.clone());
        check_path(scratch, literal, &sub, x, problems);
    }
    if problems.len() == before {
        problems.push(at(deep));
    }
}

/// The schema's field names (optional ones included), e.g. for a test that a documentation
/// table lists exactly the schema's keys.
pub fn schema_fields(schema: &SettingsSchema) -> Result<Vec<String>, String> {
    let scratch = Scratch::new(schema).map_err(|e| e.to_string())?;
    let v = scratch.eval("std.record.fields_with_opts s")?;
    Ok(v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default())
}

/// The settings schema of an extension directory, if it has one.
pub fn extension_schema(dir: &Path) -> Option<SettingsSchema> {
    let p = dir.join("schemas").join("settings.ncl");
    p.is_file().then_some(SettingsSchema::File(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SCHEMA: SettingsSchema = SettingsSchema::Embedded {
        name: "test/settings.ncl",
        source: SCHEMA_SOURCE,
    };

    const SCHEMA_SOURCE: &str = r#"let prov = import "prov/schemas.ncl" in
{
  name | prov.NonEmptyString,
  size | prov.IntegerIn 1 10 | default = 3,
  api | { url | prov.HttpUrl, timeout | prov.NumberIn 1 60 | default = 30 } | optional,
  auth | { token | std.contract.from_validator (fun v => if std.is_string v && std.string.length v > 8 then 'Ok else 'Error { message = "too short" }) } | optional,
}
"#;

    fn problems(v: Value) -> Vec<(String, String)> {
        check_settings(&SCHEMA, &v)
            .unwrap_err()
            .into_iter()
            .map(|p| (p.path, p.message))
            .collect()
    }

    #[test]
    fn accepted_settings_come_back_with_the_defaults() {
        let v = check_settings(&SCHEMA, &json!({"name": "a", "api": {"url": "http://h"}})).unwrap();
        assert_eq!(
            v,
            json!({"name": "a", "size": 3, "api": {"url": "http://h", "timeout": 30}})
        );
    }

    /// Checks of the same settings at once (a plan's refresh builds a provider while loading
    /// checks its settings) evaluate them once: the later ones wait for the first.
    #[test]
    fn settings_checked_at_once_by_several_threads_are_evaluated_once() {
        let v = json!({"name": "at-once", "api": {"url": "http://h"}});
        let answers: Vec<Checked> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..4)
                .map(|_| scope.spawn(|| check_settings(&SCHEMA, &v)))
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert!(answers.iter().all(|a| a == &answers[0] && a.is_ok()));
        let evaluated = EVALUATED.lock().unwrap();
        let key = v.to_string();
        let times = evaluated.iter().filter(|e| **e == key).count();
        assert_eq!(times, 1, "{evaluated:?}");
    }

    /// Each case: the settings, then the paths of the problems found, in order.
    #[test]
    fn every_problem_is_found_each_at_its_path() {
        let cases: &[(Value, &[&str])] = &[
            (json!({}), &["name"]),
            (json!({"name": "a", "size": 11}), &["size"]),
            (
                json!({"name": "a", "typo": 1, "other": 2}),
                &["other", "typo"],
            ),
            (
                json!({"name": "", "size": "x", "typo": 1}),
                &["name", "size", "typo"],
            ),
            // A record's fields each on their own; an unknown one fails the record itself.
            (
                json!({"name": "a", "api": {"url": "ftp://h", "timeout": 0}}),
                &["api.timeout", "api.url"],
            ),
            (
                json!({"name": "a", "api": {"url": "http://h", "tmeout": 1}}),
                &["api"],
            ),
            // A missing field of a record: the record.
            (json!({"name": "a", "api": {"timeout": 5}}), &["api"]),
            (json!(null), &["name"]),
            (json!([1]), &[""]),
        ];
        for (v, paths) in cases {
            let got = problems(v.clone());
            let got_paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
            assert_eq!(&got_paths, paths, "{v}: {got:#?}");
        }
        let got = problems(json!({"name": "a", "typo": 1}));
        assert!(
            got[0]
                .1
                .starts_with("unknown setting (known: api, auth, name, size)"),
            "{got:?}"
        );
        let got = problems(json!({"name": "a", "size": 11}));
        assert!(
            got[0]
                .1
                .contains("expected a whole number from 1 to 10, got 11")
                && got[0].1.contains("test/settings.ncl:4"),
            "{got:?}"
        );
    }

    #[test]
    fn credentials_are_never_quoted() {
        // Wrong type, and content the schema refuses (the masked stand-in passes: not shown).
        for token in [
            json!(987654321987u64),
            json!("short77"),
            json!({"x": "secret-99"}),
        ] {
            let got = problems(json!({"name": "a", "auth": {"token": token}}));
            assert_eq!(got.len(), 1, "{got:?}");
            let text = format!("{got:?}");
            for leak in ["987654321987", "short77", "secret-99"] {
                assert!(!text.contains(leak), "{text}");
            }
        }
    }

    #[test]
    fn a_workspace_keeps_accepted_checks_in_its_cache() {
        use std::os::unix::fs::PermissionsExt;
        let ws =
            std::env::temp_dir().join(format!("prov-settings-cache-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&ws);
        std::fs::create_dir_all(&ws).unwrap();
        let file = ws.join(".prov/cache/settings.json");
        let v = json!({"name": "cached"});
        check_settings_in(&ws, true, &SCHEMA, &v).unwrap();
        assert!(!file.exists(), "a confined check writes nothing");
        let checked = check_settings_in(&ws, false, &SCHEMA, &v).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let key = super::super::cache::settings_key("test/settings.ncl", SCHEMA_SOURCE, &v);
        assert_eq!(super::super::cache::load_settings(&ws, &key), Some(checked));
        assert!(check_settings_in(&ws, false, &SCHEMA, &json!({"name": ""})).is_err());
        assert_eq!(
            std::fs::read_to_string(&file)
                .unwrap()
                .matches("\"name\"")
                .count(),
            1,
            "refused settings are not kept"
        );
        std::fs::remove_dir_all(&ws).unwrap();
    }
}
