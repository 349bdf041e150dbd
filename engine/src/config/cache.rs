//! A content-addressed cache of evaluated configurations: keyed by the bytes of every file the evaluation reads, the limits and the prov version.
//!
//! One entry per workspace (`.prov/cache/eval.json`, the last configuration), written atomically:
//! a first line naming the format, a second line with the key and what it covers (the files
//! read, the import candidates that were absent, the value's hash), then the value and the
//! positions. A hit is decided from the first two lines alone, without scanning the sources
//! again (at 10,000 servers the scan is a 3.6 MB lexing pass) or parsing the value: the same
//! bytes in the same files, with the same absent candidates, import the same files again.

use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::EvalOptions;

/// Bumped when the cached document's shape changes.
/// 3: values are checked against `prov_state::MAX_VALUE_DEPTH` before they are cached (an entry
/// of format 2 may hold a value that is now refused).
/// 4: the fields the schema's defaults filled in are kept too.
const CACHE_FORMAT: &str = "prov-eval-cache-4";

/// The cache key, or None when a file cannot be read (then nothing is cached).
pub(crate) fn key(files: &[PathBuf], opts: &EvalOptions) -> Option<String> {
    let mut h = Sha256::new();
    h.update(CACHE_FORMAT);
    h.update(env!("CARGO_PKG_VERSION"));
    // A hit skips the scan that enforces the limits: they are part of what was checked.
    h.update((opts.max_depth as u64).to_le_bytes());
    h.update(opts.max_bytes.to_le_bytes());
    let mut sorted: Vec<&PathBuf> = files.iter().collect();
    sorted.sort();
    for f in sorted {
        let bytes = std::fs::read(f).ok()?;
        h.update(f.to_string_lossy().as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(&bytes);
    }
    Some(hex(&h.finalize()))
}

/// sha256 of the value's compact JSON: `Loaded::config_hash`, which plans record.
pub(crate) fn value_hash(value: &serde_json::Value) -> String {
    let bytes = serde_json::to_vec(value).expect("JSON values serialise");
    hex(&Sha256::digest(&bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dir(workspace: &Path) -> PathBuf {
    workspace.join(".prov").join("cache")
}

/// The entry's second line.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    key: String,
    files: Vec<PathBuf>,
    misses: Vec<PathBuf>,
    hash: String,
}

#[derive(serde::Serialize)]
struct BodyOut<'a> {
    value: &'a serde_json::Value,
    positions: &'a BTreeMap<String, String>,
    defaults: &'a BTreeSet<String>,
}

#[derive(serde::Deserialize)]
struct BodyIn {
    // The servers' values end up in the model for the whole run: without the parser's slack.
    #[serde(deserialize_with = "prov_state::compact_value")]
    value: serde_json::Value,
    positions: BTreeMap<String, String>,
    defaults: BTreeSet<String>,
}

/// A cached evaluation that still holds.
pub(crate) struct Hit {
    pub value: serde_json::Value,
    pub positions: BTreeMap<String, String>,
    pub defaults: BTreeSet<String>,
    pub files: Vec<PathBuf>,
    pub hash: String,
}

/// The cached evaluation, when every file it read has the same bytes and every import
/// candidate that was absent still is.
pub(crate) fn load(workspace: &Path, opts: &EvalOptions) -> Option<Hit> {
    let bytes = std::fs::read(dir(workspace).join("eval.json")).ok()?;
    let mut lines = bytes.splitn(3, |b| *b == b'\n');
    if lines.next()? != CACHE_FORMAT.as_bytes() {
        return None;
    }
    let meta: Meta = serde_json::from_slice(lines.next()?).ok()?;
    if key(&meta.files, opts).as_deref() != Some(meta.key.as_str())
        || meta.misses.iter().any(|m| m.is_file())
    {
        return None;
    }
    let body: BodyIn = serde_json::from_slice(lines.next()?).ok()?;
    Some(Hit {
        value: body.value,
        positions: body.positions,
        defaults: body.defaults,
        files: meta.files,
        hash: meta.hash,
    })
}

/// What [`store`] records besides the value.
pub(crate) struct Covered<'a> {
    pub key: &'a str,
    pub files: &'a [PathBuf],
    pub misses: &'a [PathBuf],
    pub hash: &'a str,
}

/// Best effort: a cache that cannot be written only costs the next run an evaluation.
pub(crate) fn store(
    workspace: &Path,
    covered: &Covered,
    value: &serde_json::Value,
    positions: &BTreeMap<String, String>,
    defaults: &BTreeSet<String>,
) {
    let d = dir(workspace);
    if std::fs::create_dir_all(&d).is_err() {
        return;
    }
    let meta = Meta {
        key: covered.key.into(),
        files: covered.files.to_vec(),
        misses: covered.misses.to_vec(),
        hash: covered.hash.into(),
    };
    let mut out = format!("{CACHE_FORMAT}\n").into_bytes();
    // Compact JSON never holds a raw newline: the lines split where they were joined.
    if serde_json::to_writer(&mut out, &meta).is_err() {
        return;
    }
    out.push(b'\n');
    if serde_json::to_writer(
        &mut out,
        &BodyOut {
            value,
            positions,
            defaults,
        },
    )
    .is_err()
    {
        return;
    }
    // Mode 0600: the evaluated configuration holds provider settings, credentials included.
    write_private(&d, "eval.json", &out);
}

/// Names the settings cache's document.
const SETTINGS_FORMAT: &str = "prov-settings-cache-1";
/// Entries the settings cache keeps (the providers of a workspace, a few edits back).
const SETTINGS_KEEP: usize = 16;

/// The key of one settings check: the schema's name and text, the library, prov's version and
/// the settings.
pub(crate) fn settings_key(name: &str, source: &str, value: &serde_json::Value) -> String {
    let mut h = Sha256::new();
    h.update(SETTINGS_FORMAT);
    h.update(env!("CARGO_PKG_VERSION"));
    for part in [name, source] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (path, text) in super::library::LIBRARY {
        h.update(path);
        h.update((text.len() as u64).to_le_bytes());
        h.update(text);
    }
    h.update(serde_json::to_vec(value).expect("JSON values serialise"));
    hex(&h.finalize())
}

/// The settings checks that passed (`.prov/cache/settings.json`): key → checked value.
fn settings_entries(workspace: &Path) -> Vec<(String, serde_json::Value)> {
    let Ok(text) = std::fs::read_to_string(dir(workspace).join("settings.json")) else {
        return Vec::new();
    };
    match text.split_once('\n') {
        Some((SETTINGS_FORMAT, body)) => serde_json::from_str(body).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The checked value a passing check with `key` returned, if the cache holds it.
pub(crate) fn load_settings(workspace: &Path, key: &str) -> Option<serde_json::Value> {
    settings_entries(workspace)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Best effort, like [`store`]: the latest [`SETTINGS_KEEP`] passing checks, mode 0600 (the
/// settings hold credentials).
pub(crate) fn store_settings(workspace: &Path, key: &str, checked: &serde_json::Value) {
    let d = dir(workspace);
    if std::fs::create_dir_all(&d).is_err() {
        return;
    }
    let mut entries = settings_entries(workspace);
    entries.retain(|(k, _)| k != key);
    entries.push((key.to_string(), checked.clone()));
    let skip = entries.len().saturating_sub(SETTINGS_KEEP);
    let mut out = format!("{SETTINGS_FORMAT}\n").into_bytes();
    if serde_json::to_writer(&mut out, &entries[skip..]).is_err() {
        return;
    }
    write_private(&d, "settings.json", &out);
}

/// Replaces `dir/name` with `bytes` whole (a temporary file renamed over it), readable by its
/// owner only; best effort: a cache that cannot be written is not one.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    // Unique per write: two threads of one process may write the same file.
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.tmp.{}.{n}", std::process::id()));
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes));
    if written.is_err() || std::fs::rename(&tmp, dir.join(name)).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}
