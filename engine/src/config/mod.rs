//! Workspace configuration: evaluates a workspace's `main.ncl` with Nickel into contract-checked
//! JSON. This is the only module of prov that touches Nickel.
//!
//! [`evaluate`] does, in order:
//! 1. writes the embedded schema library ([`schema_library`]) to `<workspace>/.prov/lib/`, which
//!    becomes a Nickel import path, so `import "prov/schemas.ncl"` works from any workspace;
//! 2. pre-scans `main.ncl` and every file reachable through `import "..."` literals for total
//!    size and nesting depth ([`EvalOptions`]), because input nested too deeply overflows
//!    Nickel's stack and aborts the process, which cannot be caught;
//! 3. evaluates `main.ncl` on a dedicated thread with a 256 MiB stack (Nickel values are not
//!    `Send`), with the library's `Workspace` contract always applied to the whole value (like
//!    `nickel export --apply-contract .prov/lib/prov/workspace.ncl main.ncl`), so defaults are
//!    filled and misspelled fields are rejected even when `main.ncl` annotates nothing;
//!    (On the happy path the contract is checked in Rust instead: module `check`. A `main.ncl`
//!    that is plain data — records, arrays, literals — is not given to Nickel at all: module
//!    `data` reads it, and the same Rust check decides; see [`EvalOptions::plain_data`].)
//! 4. exports the result to JSON exactly as `nickel export` would, and records where servers,
//!    taskservs, clusters, components, outputs and providers were declared
//!    ([`Evaluated::positions`]).
//!
//! Nickel's warnings and the output of `std.trace` go to stderr.
//!
//! # The exported shape
//! The JSON value always has the keys `backend` (`{"type": "sled"}` unless set), `providers`,
//! `servers`, `clusters` and `outputs` (empty objects unless set). Enum tags export as strings
//! (`'ingress` → `"ingress"`). A taskserv's `depends_on` entries are always objects
//! `{"name": .., "kind": "Requires" | "PrefersBefore" | "ConflictsWith"}`: the schema turns a
//! plain string entry `"containerd"` into `{"name": "containerd", "kind": "Requires"}`. Optional
//! fields without a value (`hostname`, `plan`, `zone`, `implementation`, ...) are absent. Object
//! keys are sorted (Nickel's export order).
//!
//! # Priorities in the library
//! Contract defaults (`os | String | default = "ubuntu-22.04"`) have Nickel's `default`
//! priority; the values of the shipped template `prov.clusters.buildkit` have priority -1; a
//! workspace's own values have the normal priority 0. So a workspace overrides both by plain
//! merging: `prov.clusters.buildkit & { resources.min_nodes = 3 }`.

mod cache;
mod check;
mod confine;
mod data;
mod defaults;
mod eval;
mod library;
mod positions;
mod scan;
pub mod settings;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Limits and rendering options for [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalOptions {
    /// Maximum nesting depth of the *source* across `main.ncl` and its imports: open brackets
    /// (`{`, `[`, `(`), plus, within one bracket level, binary operators and `let`/`if`/`fun`
    /// since the last `,` (Nickel nests `1 + 1 + ...` as deeply as it is long). It guards
    /// Nickel's own stack while parsing and typechecking, so it counts syntax, not data, and is
    /// larger than the limit on data: the *value* the configuration evaluates to may nest at most
    /// [`prov_state::MAX_VALUE_DEPTH`] levels of records and arrays, checked after evaluation
    /// ([`ConfigError::ValueTooDeep`]; values computed by functions are checked too). That one
    /// limit is the one every state backend, dump and plan file reads back.
    pub max_depth: usize,
    /// Maximum total size in bytes of `main.ncl` and all files it imports.
    pub max_bytes: u64,
    /// Render Nickel diagnostics with ANSI colours.
    pub color: bool,
    /// Reuse the result of an earlier evaluation of byte-identical inputs (`.prov/cache/`).
    pub cache: bool,
    /// Untrusted configurations (`prov plan --untrusted`): every import must be a plain string
    /// naming a file inside the workspace directory (or prov's library), checked before Nickel
    /// reads anything, so a pull request's `main.ncl` cannot read the runner's files
    /// (`import "/proc/self/environ" as 'Text`) into a plan it can see. The evaluation cache is
    /// neither read nor written (a cache file is the workspace's too).
    pub confined: bool,
    /// Check the `Workspace` contract in Rust on a value evaluated without it, and have Nickel
    /// apply it only when that check does not accept the value (for its diagnostic) or the
    /// sources may read their own fields (module `check`; ~45 % of a large evaluation). Off:
    /// Nickel applies the contract always (`PROV_NICKEL_CONTRACT=1`, for comparison).
    pub rust_check: bool,
    /// Read a `main.ncl` that is plain data (records, arrays, literals: module `data`) in Rust
    /// instead of having Nickel evaluate it, then check it as [`EvalOptions::rust_check`] does;
    /// anything else, or anything that check does not accept, Nickel evaluates as before. Needs
    /// `rust_check`. Off: Nickel evaluates every workspace (`PROV_NICKEL_EVAL=1`).
    pub plain_data: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            max_depth: 1000,
            max_bytes: 64 << 20,
            color: false,
            cache: std::env::var_os("PROV_NO_EVAL_CACHE").is_none(),
            confined: false,
            rust_check: std::env::var_os("PROV_NICKEL_CONTRACT").is_none(),
            plain_data: std::env::var_os("PROV_NICKEL_EVAL").is_none(),
        }
    }
}

/// Bounds of every Nickel evaluation in the process ([`set_limits`]): a runaway configuration
/// (`let rec f = fun x => f x in f 1`) otherwise grows until the kernel kills prov, and
/// everything else on the machine with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalLimits {
    /// The process's resident memory (bytes) while an evaluation runs.
    pub memory_bytes: u64,
    /// Wall-clock time of one evaluation.
    pub time: std::time::Duration,
}

impl EvalLimits {
    /// 4 GiB and 5 minutes: 10,000 servers evaluate in ~2.5 s and ~250 MB.
    pub const DEFAULT: EvalLimits = EvalLimits {
        memory_bytes: 4 << 30,
        time: std::time::Duration::from_secs(300),
    };
}

impl Default for EvalLimits {
    fn default() -> Self {
        EvalLimits::DEFAULT
    }
}

pub use eval::{set_limits, set_messages};
pub use settings::{check_settings, SettingsProblem, SettingsSchema};

/// A successfully evaluated workspace configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated {
    /// The deep-evaluated, contract-checked workspace configuration.
    pub value: serde_json::Value,
    /// Where things were declared: `"servers.web-01"` → `"main.ncl:12:5"` (line:column, 1-based;
    /// the file relative to the workspace directory when inside it). Keys: `providers.P`,
    /// `servers.S`, `servers.S.taskservs.T`, `clusters.C`, `clusters.C.components.NAME`,
    /// `outputs.O`. Best effort: a key is absent when its position is unknown.
    pub positions: BTreeMap<String, String>,
    /// Fields the schema's defaults filled in, not written by the workspace, as dotted paths
    /// (`servers.S.taskservs.T.on_error`, `clusters.C.features`,
    /// `clusters.C.components.NAME.config`): plans leave them out of a create's listing.
    pub defaults: BTreeSet<String>,
    /// The source files read: `main.ncl` first, then every file reached through a static
    /// `import "..."` (including the schema library under `.prov/lib/`), in discovery order.
    pub files: Vec<PathBuf>,
    /// sha256 of `value` as compact JSON (kept with the cached value, so a hit does not
    /// serialise the whole configuration again to hash it).
    pub hash: String,
    /// Evaluated confined ([`EvalOptions::confined`]): nothing outside the workspace's own
    /// configuration is to be evaluated for it either (extension directories' settings schemas).
    pub confined: bool,
}

/// Why a workspace configuration could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no main.ncl in {}: a prov workspace is a directory with main.ncl", dir.display())]
    NoMainFile { dir: PathBuf },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}:{line}:{column}: configuration nested too deeply: depth {depth} exceeds the limit of {limit}",
        file.display()
    )]
    TooDeep {
        file: PathBuf,
        line: usize,
        column: usize,
        depth: usize,
        limit: usize,
    },
    /// The evaluated configuration nests records and arrays deeper than
    /// [`prov_state::MAX_VALUE_DEPTH`] (counted from its top): the state could not store it.
    #[error(
        "{at}: configuration nested too deeply at {path}: {depth} levels of records and arrays \
         (counted from the top of the configuration), more than the limit of {limit}; prov's \
         state stores no value nested deeper (it could not read it back)"
    )]
    ValueTooDeep {
        /// Where the innermost declared thing on the path is (`main.ncl:12:5`, a taskserv or
        /// server), or the main file.
        at: String,
        /// The path to the first level beyond the limit (shortened in the middle when long).
        path: String,
        depth: usize,
        limit: usize,
    },
    #[error("configuration too large: {bytes} bytes of Nickel source exceed the limit of {limit}")]
    TooLarge { bytes: u64, limit: u64 },
    /// Nickel's own diagnostic (file:line:column, snippet, labels), as `nickel export` prints it.
    #[error("{rendered}")]
    Nickel { rendered: String },
    #[error("internal error while evaluating the configuration: {0}")]
    Internal(String),
    /// A confined evaluation ([`EvalOptions::confined`]) would read outside the workspace.
    #[error("{at}: {detail}; an untrusted plan reads only files inside the workspace directory")]
    Confined { at: String, detail: String },
    #[error(
        "evaluating the configuration exceeded the memory limit of {} (prov's resident memory \
         reached {}): an endless recursion? Nothing was changed. If the configuration really \
         needs more, raise the limit with --eval-memory-limit SIZE or PROV_EVAL_MEMORY_LIMIT \
         (e.g. 8GiB)",
        mib(*limit_bytes),
        mib(*used_bytes)
    )]
    MemoryLimit { limit_bytes: u64, used_bytes: u64 },
    #[error(
        "evaluating the configuration exceeded the time limit of {}: an endless loop? Nothing \
         was changed. If the configuration really needs longer, raise the limit with \
         --eval-time-limit DURATION or PROV_EVAL_TIME_LIMIT (e.g. 15m)",
        secs(*limit)
    )]
    TimeLimit { limit: std::time::Duration },
}

impl ConfigError {
    /// An evaluation limit was exceeded: the runaway evaluation is still running, so the
    /// process must end instead of carrying on without the configuration.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            ConfigError::MemoryLimit { .. } | ConfigError::TimeLimit { .. }
        )
    }
}

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes.div_ceil(1 << 20))
}

fn secs(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Evaluate the workspace in `workspace_dir` (its `main.ncl`). See the module documentation.
pub fn evaluate(workspace_dir: &Path, opts: &EvalOptions) -> Result<Evaluated, ConfigError> {
    evaluate_with_report(workspace_dir, opts).map(|(e, _)| e)
}

/// How an evaluation's `Workspace` contract was checked ([`evaluate_with_report`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContractCheck {
    /// The value came from the evaluation cache.
    Cached,
    /// In Rust, on the value evaluated without the contract ([`EvalOptions::rust_check`]).
    Rust,
    /// In Rust, on plain data read without Nickel ([`EvalOptions::plain_data`]).
    PlainData,
    /// By Nickel.
    Nickel,
}

/// [`evaluate`], also telling how the contract was checked (for tests and measurements).
pub fn evaluate_with_report(
    workspace_dir: &Path,
    opts: &EvalOptions,
) -> Result<(Evaluated, ContractCheck), ConfigError> {
    let main = workspace_dir.join("main.ncl");
    if !main.is_file() {
        return Err(ConfigError::NoMainFile {
            dir: workspace_dir.to_path_buf(),
        });
    }
    let lib_dir = library::lib_dir(workspace_dir);
    if opts.confined {
        confine::check_library(workspace_dir, &lib_dir)?;
    }
    library::materialize(&lib_dir)?;
    let contract = lib_dir.join(library::WORKSPACE_CONTRACT);
    let cache_on = opts.cache && !opts.confined;

    // Nickel evaluation dominates a plan's time; an unchanged configuration (same bytes in every
    // file it reads, same prov) evaluates to the same value, so it is evaluated once.
    if cache_on {
        if let Some(hit) = cache::load(workspace_dir, opts) {
            let evaluated = Evaluated {
                value: hit.value,
                positions: hit.positions,
                defaults: hit.defaults,
                files: hit.files,
                hash: hit.hash,
                confined: false,
            };
            return Ok((evaluated, ContractCheck::Cached));
        }
    }

    let (scanned, read) = match plain_unscanned(workspace_dir, &main, &contract, &lib_dir, opts)? {
        Some((scanned, output)) => (scanned, Some(output)),
        None => {
            // The workspace contract is read by Nickel too.
            let scanned = scan::scan_workspace(
                &[main.as_path(), contract.as_path()],
                std::slice::from_ref(&lib_dir),
                &lib_dir,
                opts,
            )?;
            let read = if opts.rust_check && opts.plain_data {
                plain_data(workspace_dir, &main, None)?
            } else {
                None
            };
            (scanned, read)
        }
    };
    if opts.confined {
        confine::check_scan(workspace_dir, &lib_dir, &scanned)?;
    }

    let (output, check) = match read {
        Some(output) => (output, ContractCheck::PlainData),
        None => {
            let output = nickel(workspace_dir, &main, lib_dir, contract, &scanned, opts)?;
            let check = if output.rust_checked {
                ContractCheck::Rust
            } else {
                ContractCheck::Nickel
            };
            (output, check)
        }
    };
    let hash = cache::value_hash(&output.value);

    if cache_on {
        if let Some(k) = cache::key(&scanned.files, opts) {
            let covered = cache::Covered {
                key: &k,
                files: &scanned.files,
                misses: &scanned.misses,
                hash: &hash,
            };
            cache::store(
                workspace_dir,
                &covered,
                &output.value,
                &output.positions,
                &output.defaults,
            );
        }
    }
    let evaluated = Evaluated {
        value: output.value,
        positions: output.positions,
        defaults: output.defaults,
        files: scanned.files,
        hash,
        confined: opts.confined,
    };
    Ok((evaluated, check))
}

/// A plain-data `main.ncl` read and checked without the lexical scan of it, which costs as much
/// as reading it (~20 ms at 10,000 servers): the scan looks for imports (plain data has none)
/// and measures nesting, which here cannot pass `max_depth` when the reader accepted the file
/// (its own bound, [`data::MAX_DEPTH`], plus the at most two operators the scan counts in one
/// number literal, `-1e-5`, stays below it). Only the contract's files (prov's library) are
/// scanned, and the result is what scanning both would give: `main.ncl` first in `files`, the
/// same size limit over all of them. `None` (scan as before) when the limits are not the
/// defaults' order, the file is too large or not plain data, or the check does not accept it:
/// then the full scan reports what it reports and Nickel decides.
fn plain_unscanned(
    workspace_dir: &Path,
    main: &Path,
    contract: &Path,
    lib_dir: &Path,
    opts: &EvalOptions,
) -> Result<Option<(scan::ScanResult, eval::Output)>, ConfigError> {
    if !(opts.rust_check && opts.plain_data) || opts.max_depth < data::MAX_DEPTH + 8 {
        return Ok(None);
    }
    // Measured before it is read, as the scan does.
    let main_bytes = std::fs::metadata(main).map_or(u64::MAX, |m| m.len());
    if main_bytes > opts.max_bytes {
        return Ok(None);
    }
    let Ok(text) = std::fs::read_to_string(main) else {
        return Ok(None);
    };
    if text.len() as u64 != main_bytes {
        return Ok(None);
    }
    let rest = EvalOptions {
        max_bytes: opts.max_bytes - main_bytes,
        ..opts.clone()
    };
    let Ok(mut scanned) =
        scan::scan_workspace(&[contract], &[lib_dir.to_path_buf()], lib_dir, &rest)
    else {
        return Ok(None);
    };
    let Some(output) = plain_data(workspace_dir, main, Some(text))? else {
        return Ok(None);
    };
    scanned.files.insert(0, main.to_path_buf());
    scanned.reads_fields = false;
    Ok(Some((scanned, output)))
}

/// `main.ncl` read as plain data and checked against the `Workspace` contract in Rust (module
/// `data`); `None` when it is not plain data or the check does not accept it (Nickel decides).
/// `text`: its contents when already read.
fn plain_data(
    workspace_dir: &Path,
    main: &Path,
    text: Option<String>,
) -> Result<Option<eval::Output>, ConfigError> {
    let text = match text {
        Some(t) => t,
        None => match std::fs::read_to_string(main) {
            Ok(t) => t,
            Err(_) => return Ok(None),
        },
    };
    let Some(data) = data::read(&text) else {
        return Ok(None);
    };
    drop(text);
    let mut json = data.to_json();
    let Ok(filled) = check::workspace(&data, &mut json) else {
        return Ok(None);
    };
    let file = main.strip_prefix(workspace_dir).unwrap_or(main);
    let positions = data::positions(&data, &file.display().to_string());
    drop(data);
    if let Some(deep) = prov_state::find_too_deep(&json, prov_state::MAX_VALUE_DEPTH) {
        return Err(eval::too_deep(workspace_dir, main, &positions, deep));
    }
    Ok(Some(eval::Output {
        value: json,
        positions,
        defaults: filled,
        rust_checked: true,
    }))
}

/// `main.ncl` evaluated by Nickel (its contract checked in Rust where it can be).
fn nickel(
    workspace_dir: &Path,
    main: &Path,
    lib_dir: PathBuf,
    contract: PathBuf,
    scanned: &scan::ScanResult,
    opts: &EvalOptions,
) -> Result<eval::Output, ConfigError> {
    eval::run(eval::Job {
        workspace_dir: workspace_dir.to_path_buf(),
        main: main.to_path_buf(),
        lib_dir,
        contract: Some(contract),
        rust_check: opts.rust_check && !scanned.reads_fields,
        color: opts.color,
        check_value_depth: true,
        brief: false,
    })
}

/// Evaluates one Nickel file of an extension (e.g. a taskserv's `schemas/version.ncl`) to JSON,
/// with the file's own directory as the import path. Errors are Nickel's diagnostics (file, line).
pub fn eval_file(file: &Path) -> Result<serde_json::Value, ConfigError> {
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok(eval::run(eval::Job {
        workspace_dir: dir.clone(),
        main: file.to_path_buf(),
        lib_dir: dir,
        contract: None,
        rust_check: false,
        color: false,
        check_value_depth: false,
        brief: false,
    })?
    .value)
}

/// A Nickel string literal of `s` (backslash, quote and `%` escaped).
fn nickel_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("\\%"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `v` as a Nickel expression (records with quoted field names).
pub fn nickel_literal(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => nickel_string(s),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(nickel_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(o) => format!(
            "{{{}}}",
            o.iter()
                .map(|(k, v)| format!("{} = {}", nickel_string(k), nickel_literal(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Applies the contract that `contract_file` evaluates to (e.g. a taskserv's
/// `schemas/settings.ncl`) to `value` and returns the checked value with the contract's defaults
/// filled. A violation is Nickel's diagnostic, pointing at the line of `contract_file`.
pub fn check_against(
    contract_file: &Path,
    value: &serde_json::Value,
) -> Result<serde_json::Value, ConfigError> {
    check_against_member(contract_file, None, value)
}

/// [`check_against`] with the contract in field `member` of what the file evaluates to (a
/// cluster extension's `schemas/cluster.ncl` holds `ClusterConfig`, `Component` and examples).
pub fn check_against_member(
    contract_file: &Path,
    member: Option<&str>,
    value: &serde_json::Value,
) -> Result<serde_json::Value, ConfigError> {
    let contract_file = contract_file
        .canonicalize()
        .map_err(|source| ConfigError::Io {
            path: contract_file.to_path_buf(),
            source,
        })?;
    let import = contract_file
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    // The value is written as a Nickel literal: Nickel 0.19 panics applying contracts to
    // arrays inside a `std.deserialize`d value. A member is reached through a let binding: it
    // also panics on a field access directly on an `import`.
    let source = match member {
        None => format!("({}) | (import \"{import}\")\n", nickel_literal(value)),
        Some(m) => format!(
            "let prov_schema = import \"{import}\" in ({}) | prov_schema.{}\n",
            nickel_literal(value),
            nickel_string(m)
        ),
    };
    let main = scratch_file("prov-check-", &source)?;
    let dir = contract_file
        .parent()
        .unwrap_or(Path::new("/"))
        .to_path_buf();
    let out = eval::run(eval::Job {
        workspace_dir: dir.clone(),
        main: main.to_path_buf(),
        lib_dir: dir,
        contract: None,
        rust_check: false,
        color: false,
        check_value_depth: false,
        brief: false,
    });
    drop(main);
    Ok(out?.value)
}

/// Writes `source` to a new file in the temporary directory, created exclusively under a random
/// name and readable by its owner only — a name another user could guess, or a link planted
/// under it, is never written through; removed when the returned path is dropped.
fn scratch_file(prefix: &str, source: &str) -> Result<tempfile::TempPath, ConfigError> {
    use std::io::Write;
    let io = |path: PathBuf| move |source| ConfigError::Io { path, source };
    let mut f = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(".ncl")
        .tempfile()
        .map_err(io(std::env::temp_dir()))?;
    f.write_all(source.as_bytes())
        .map_err(io(f.path().to_path_buf()))?;
    Ok(f.into_temp_path())
}

/// A new private directory in the temporary directory (0700, a random name created
/// exclusively, removed on drop) holding a copy of the schema library.
pub(crate) fn library_copy(prefix: &str) -> Result<tempfile::TempDir, ConfigError> {
    let tmp = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .map_err(|source| ConfigError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
    library::materialize(tmp.path())?;
    Ok(tmp)
}

/// Evaluates the Nickel `source` (a snippet written to a temporary file) with `dir` as its
/// import path, e.g. `let s = import "/abs/cluster.ncl" in std.record.fields s`. Errors are
/// Nickel's diagnostics, naming the imported file and line where the problem is there.
pub fn eval_snippet(dir: &Path, source: &str) -> Result<serde_json::Value, ConfigError> {
    let main = scratch_file("prov-snippet-", source)?;
    let out = eval::run(eval::Job {
        workspace_dir: dir.to_path_buf(),
        main: main.to_path_buf(),
        lib_dir: dir.to_path_buf(),
        contract: None,
        rust_check: false,
        color: false,
        check_value_depth: false,
        brief: false,
    });
    drop(main);
    Ok(out?.value)
}

/// Applies the schema library's contract `member` (e.g. `TaskservVersion`, the seed's taskserv
/// version descriptor) to what `file` evaluates to; returns the checked value.
pub fn check_file_against_library(
    file: &Path,
    member: &str,
) -> Result<serde_json::Value, ConfigError> {
    let file = file.canonicalize().map_err(|source| ConfigError::Io {
        path: file.to_path_buf(),
        source,
    })?;
    // A private copy of the library: nothing is written into the extension.
    let tmp = library_copy("prov-lib-")?;
    let lib = tmp.path().to_path_buf();
    let import = file
        .to_string_lossy()
        .replace('\\', "\\\\")
        .replace('"', "\\\"");
    let source = format!(
        "let prov = import \"prov/schemas.ncl\" in let value = import \"{import}\" in value | prov.{}\n",
        nickel_string(member).trim_matches('"')
    );
    let out = eval_snippet(&lib, &source);
    drop(tmp);
    out
}

/// The embedded schema library: (path relative to the library directory, contents), e.g.
/// `("prov/schemas.ncl", "...")`. `prov` can write it out for editors and language servers.
pub fn schema_library() -> &'static [(&'static str, &'static str)] {
    library::LIBRARY
}

/// For measurements (`bench/probe`'s `prov-bench-nickel-phases --prov`): the steps of an
/// evaluation of a plain-data workspace without cache, each timed — schema library write-out,
/// pre-scan, read of `main.ncl`, the plain-data reader, conversion to JSON, the Rust check of
/// the `Workspace` contract, positions, hash. `None` when `main.ncl` is not plain data the
/// check accepts.
#[doc(hidden)]
pub fn plain_data_phases(
    workspace_dir: &Path,
) -> Result<Option<Vec<(&'static str, std::time::Duration)>>, ConfigError> {
    let mut laps = Vec::new();
    let mut t = std::time::Instant::now();
    let mut lap = |name: &'static str, laps: &mut Vec<_>| {
        laps.push((name, t.elapsed()));
        t = std::time::Instant::now();
    };
    let main = workspace_dir.join("main.ncl");
    let lib_dir = library::lib_dir(workspace_dir);
    library::materialize(&lib_dir)?;
    lap("schema library write-out", &mut laps);
    let contract = lib_dir.join(library::WORKSPACE_CONTRACT);
    let opts = EvalOptions::default();
    let scanned = scan::scan_workspace(
        &[main.as_path(), contract.as_path()],
        std::slice::from_ref(&lib_dir),
        &lib_dir,
        &opts,
    )?;
    lap("pre-scan (size, depth, imports, names)", &mut laps);
    let text = std::fs::read_to_string(&main).map_err(|source| ConfigError::Io {
        path: main.clone(),
        source,
    })?;
    lap("read main.ncl", &mut laps);
    let Some(data) = data::read(&text) else {
        return Ok(None);
    };
    lap("plain-data reader", &mut laps);
    let mut json = data.to_json();
    lap("to serde_json::Value", &mut laps);
    if check::workspace(&data, &mut json).is_err() {
        return Ok(None);
    }
    lap("Workspace contract, checked in Rust", &mut laps);
    let positions = data::positions(&data, "main.ncl");
    lap("positions", &mut laps);
    let _ = prov_state::find_too_deep(&json, prov_state::MAX_VALUE_DEPTH);
    lap("value depth check", &mut laps);
    let _ = cache::value_hash(&json);
    lap("hash", &mut laps);
    std::mem::forget((data, json, positions, scanned, text));
    Ok(Some(laps))
}
