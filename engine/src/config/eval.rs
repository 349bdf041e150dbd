//! The Nickel evaluation proper, run on a dedicated thread with a large stack: Nickel's values are
//! not `Send` and deep recursion in its typechecker and evaluator needs far more than the usual
//! 2–8 MiB. Only serde_json values and rendered strings leave the thread.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use nickel_lang_core::error::report::{report_as_str, ColorOpt};
use nickel_lang_core::error::{warning::Warning, Error, Reporter};
use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::eval::value::NickelValue;
use nickel_lang_core::files::Files;
use nickel_lang_core::program::{BuilderError, Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};

use super::{positions, ConfigError, EvalLimits};

/// Stack size of the evaluation thread. Nickel needs roughly 4 KiB of stack per nesting level
/// of records; with the default depth limit of 1000 this leaves a wide margin.
const EVAL_STACK_BYTES: usize = 256 << 20;

/// What to evaluate.
pub(crate) struct Job {
    pub workspace_dir: PathBuf,
    pub main: PathBuf,
    pub lib_dir: PathBuf,
    /// Applied to the whole value (the workspace contract); `None` for extension schema files.
    pub contract: Option<PathBuf>,
    /// Evaluate without `contract` first and check the value in Rust ([`super::check`]), which
    /// is what `contract` is; Nickel applies it only when that check does not accept the value
    /// (or the evaluation without it failed). Only for the workspace contract, and only when the
    /// sources cannot read their own fields (`scan::ScanResult::reads_fields`), where the
    /// contract's defaults could change what they compute.
    pub rust_check: bool,
    pub color: bool,
    /// Refuse a value nested deeper than `prov_state::MAX_VALUE_DEPTH` (a workspace's
    /// configuration, which ends up in the state). Checked here, on the evaluation thread's
    /// large stack, so a refused value of any depth is dropped where that is safe.
    pub check_value_depth: bool,
    /// Render an error as one line per diagnostic without source snippets of `main` ([`brief`]):
    /// `main` holds a value being checked (extension settings), which may be a secret.
    pub brief: bool,
}

/// The thread's result.
pub(crate) struct Output {
    pub value: serde_json::Value,
    pub positions: BTreeMap<String, String>,
    pub defaults: BTreeSet<String>,
    /// The workspace contract was checked in Rust ([`Job::rust_check`] and accepted).
    pub rust_checked: bool,
}

/// How often the waiting caller checks the process's memory and the elapsed time. Nickel
/// allocates at up to ~1 GB/s in a runaway recursion, so the limit is overshot by a few MB.
const WATCH_EVERY: Duration = Duration::from_millis(5);

/// Process-wide limits of every evaluation ([`set_limits`]).
static LIMITS: Mutex<EvalLimits> = Mutex::new(EvalLimits::DEFAULT);
/// Set once a limit was exceeded: that evaluation thread cannot be stopped and is still
/// running, so no other evaluation is started beside it.
static TRIPPED: Mutex<Option<Tripped>> = Mutex::new(None);

#[derive(Clone, Copy)]
enum Tripped {
    Memory { limit: u64, used: u64 },
    Time { limit: Duration },
}

impl Tripped {
    fn error(self) -> ConfigError {
        match self {
            Tripped::Memory { limit, used } => ConfigError::MemoryLimit {
                limit_bytes: limit,
                used_bytes: used,
            },
            Tripped::Time { limit } => ConfigError::TimeLimit { limit },
        }
    }
}

/// Sets the limits of every later evaluation in this process (the CLI's `--eval-memory-limit`
/// and `--eval-time-limit`).
pub fn set_limits(limits: EvalLimits) {
    *LIMITS.lock().unwrap_or_else(|p| p.into_inner()) = limits;
}

fn limits() -> EvalLimits {
    *LIMITS.lock().unwrap_or_else(|p| p.into_inner())
}

/// This process's resident memory in bytes (0 when /proc cannot be read).
fn resident_bytes() -> u64 {
    let page = 4096; // sysconf(_SC_PAGESIZE) on every Linux target prov supports
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * page)
}

/// Evaluate `job` on a fresh thread and wait for the result. A panic inside Nickel becomes
/// [`ConfigError::Internal`]. The result is sent back before the Nickel program is dropped
/// (dropping a large program takes a noticeable time), so the caller does not wait for it.
///
/// While it waits, the caller watches the process's resident memory and the elapsed time
/// against [`EvalLimits`]. Nickel cannot be interrupted, so an evaluation over a limit is
/// abandoned: its thread keeps running until the process exits, which the caller must do soon
/// (the CLI renders the error and exits 1). Later evaluations in this process fail at once.
pub(crate) fn run(job: Job) -> Result<Output, ConfigError> {
    if let Some(t) = *TRIPPED.lock().unwrap_or_else(|p| p.into_inner()) {
        return Err(t.error());
    }
    let limits = limits();
    let started = Instant::now();
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("prov-config-eval".into())
        .stack_size(EVAL_STACK_BYTES)
        .spawn(move || {
            let mut program = None;
            let result = evaluate(job, &mut program);
            let _ = tx.send(result);
            drop(program);
        })
        .map_err(|e| {
            ConfigError::Internal(format!("cannot start the Nickel evaluation thread: {e}"))
        })?;
    loop {
        match rx.recv_timeout(WATCH_EVERY) {
            Ok(result) => return result,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The sender was dropped without sending: the thread panicked.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(ConfigError::Internal(match handle.join() {
                    Err(panic) => {
                        format!("the Nickel evaluation panicked: {}", panic_message(&*panic))
                    }
                    Ok(()) => "the Nickel evaluation thread ended without a result".into(),
                }))
            }
        }
        let used = resident_bytes();
        let tripped = if used > limits.memory_bytes {
            Tripped::Memory {
                limit: limits.memory_bytes,
                used,
            }
        } else if started.elapsed() > limits.time {
            Tripped::Time { limit: limits.time }
        } else {
            continue;
        };
        *TRIPPED.lock().unwrap_or_else(|p| p.into_inner()) = Some(tripped);
        return Err(tripped.error());
    }
}

/// The error for a configuration value nested too deeply: located at the innermost declared
/// thing on its path (a taskserv, server, output...), else at the main file.
pub(crate) fn too_deep(
    workspace_dir: &std::path::Path,
    main: &std::path::Path,
    positions: &BTreeMap<String, String>,
    deep: prov_state::TooDeep,
) -> ConfigError {
    let keys: Vec<&str> = deep
        .segments
        .iter()
        .map_while(|s| match s {
            prov_state::PathSegment::Key(k) => Some(k.as_str()),
            prov_state::PathSegment::Index(_) => None,
        })
        .collect();
    let at = (1..=keys.len())
        .rev()
        .find_map(|n| positions.get(&keys[..n].join(".")).cloned())
        .unwrap_or_else(|| {
            main.strip_prefix(workspace_dir)
                .unwrap_or(main)
                .display()
                .to_string()
        });
    ConfigError::ValueTooDeep {
        at,
        path: deep.path,
        depth: deep.depth,
        limit: deep.limit,
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "(no message)".into()
    }
}

/// Where Nickel's warnings and `std.trace` output go ([`set_messages`]).
type MessageSink = Arc<dyn Fn(&str) + Send + Sync>;

/// The process's message sink; none drops the messages.
static MESSAGES: Mutex<Option<MessageSink>> = Mutex::new(None);

/// Sends every later evaluation's Nickel warnings (rendered like errors) and `std.trace` output
/// to `sink`: the engine never prints, the CLI writes them to stderr.
pub fn set_messages(sink: impl Fn(&str) + Send + Sync + 'static) {
    *MESSAGES.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(sink));
}

fn message_sink() -> Option<MessageSink> {
    MESSAGES.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Where one evaluation's Nickel warnings and `std.trace` output go: to the message sink, or
/// held and handed to it only if the evaluation's result is used (the first, contract-less
/// attempt: when Nickel's contract decides instead, its own run says the same again).
#[derive(Clone)]
enum Sink {
    Direct(Option<MessageSink>),
    Held(std::rc::Rc<std::cell::RefCell<Vec<String>>>),
}

impl Sink {
    fn send(&self, message: &str) {
        match self {
            Sink::Direct(Some(sink)) => sink(message),
            Sink::Direct(None) => {}
            Sink::Held(held) => held.borrow_mut().push(message.to_string()),
        }
    }

    /// Hands held messages to the message sink.
    fn release(&self) {
        if let (Sink::Held(held), Some(sink)) = (self, message_sink()) {
            for message in held.borrow().iter() {
                sink(message);
            }
        }
    }
}

/// Hands Nickel's warnings to the sink, rendered like errors.
struct SinkReporter {
    color: ColorOpt,
    sink: Sink,
}

impl Reporter<(Warning, Files)> for SinkReporter {
    fn report(&mut self, (warning, mut files): (Warning, Files)) {
        self.sink
            .send(&report_as_str(&mut files, warning, self.color));
    }
}

/// Hands `std.trace` output to the sink.
struct SinkWriter(Sink);

impl std::io::Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.send(&String::from_utf8_lossy(buf));
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn build(
    job: &Job,
    contract: Option<&PathBuf>,
    sink: &Sink,
    color: ColorOpt,
) -> Result<Program<CacheImpl>, ConfigError> {
    ProgramBuilder::new()
        .add_path(&job.main)
        .add_import_paths([job.lib_dir.clone()])
        .add_contract_paths(contract)
        .with_trace(SinkWriter(sink.clone()))
        .with_reporter(SinkReporter {
            color,
            sink: sink.clone(),
        })
        .build::<CacheImpl>()
        .map_err(|e| match e {
            BuilderError::Io { path, error } => ConfigError::Io {
                path: path.unwrap_or_else(|| job.main.clone()),
                source: error,
            },
            other => ConfigError::Internal(other.to_string()),
        })
}
/// Nickel's diagnostic of `err` in one line, without quoting `main`: its message, then the
/// labels that point elsewhere (a schema: the source text they point at and its file and line)
/// and the notes. Call-stack diagnostics after the first are left out.
fn brief(files: &mut Files, err: Error, main: &std::path::Path) -> String {
    use nickel_lang_core::error::IntoDiagnostics;
    let diagnostics = err.into_diagnostics(files);
    let Some(d) = diagnostics.into_iter().next() else {
        return "the Nickel evaluation failed without a diagnostic".into();
    };
    let one_line = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut parts: Vec<String> = d.notes.iter().map(|n| one_line(n)).collect();
    for label in &d.labels {
        let name = std::path::PathBuf::from(files.name(label.file_id));
        // Only files on disk besides `main`: a schema or the library. Nickel's generated
        // snippets (`<unknown> (generated by evaluation)`) print the value.
        if name == main || files.is_stdlib(label.file_id) || !name.is_file() {
            continue;
        }
        let source = files.source(label.file_id);
        let text = source.get(label.range.clone()).unwrap_or_default();
        // One line of the schema at most: the contract or field, not a whole record.
        let text = text.lines().next().unwrap_or_default().trim();
        let line = files
            .location(label.file_id, label.range.start as u32)
            .map(|l| l.line.to_usize() + 1)
            .unwrap_or(0);
        let what = if label.message.is_empty() {
            format!("`{text}`")
        } else {
            format!("{} `{text}`", label.message)
        };
        parts.push(format!("{what} ({}:{line})", name.display()));
    }
    // Nickel's blame message is a headline, then the contract's own words on the next lines.
    let mut lines = d.message.lines();
    let mut message = one_line(lines.next().unwrap_or_default());
    let rest = one_line(&lines.collect::<Vec<_>>().join(" "));
    if !rest.is_empty() {
        message = format!("{message}: {rest}");
    }
    if parts.is_empty() {
        return message;
    }
    format!("{message} ({})", parts.join("; "))
}

/// The contract-less attempt: the value, exported and checked in Rust with the contract's
/// defaults filled, and the defaulted fields filled; `None` when Nickel's contract must decide.
fn without_contract(
    job: &Job,
    keep: &mut Option<Program<CacheImpl>>,
    color: ColorOpt,
) -> Option<(NickelValue, serde_json::Value, BTreeSet<String>)> {
    let sink = Sink::Held(Default::default());
    let program = keep.insert(build(job, None, &sink, color).ok()?);
    let value = program.eval_full_for_export().ok()?;
    serialize::validate(ExportFormat::Json, &value).ok()?;
    let mut json = serde_json::to_value(&value).ok()?;
    let filled = super::check::workspace(&value, &mut json).ok()?;
    sink.release();
    Some((value, json, filled))
}

/// Build and evaluate the program. The program is parked in `keep` so that the caller can drop
/// it after handing the result over.
fn evaluate(job: Job, keep: &mut Option<Program<CacheImpl>>) -> Result<Output, ConfigError> {
    let color = if job.color {
        ColorOpt::Always
    } else {
        ColorOpt::Never
    };
    let checked = if job.rust_check && job.contract.is_some() {
        without_contract(&job, keep, color)
    } else {
        None
    };
    let rust_checked = checked.is_some();
    let (value, json, filled) = match checked {
        Some(done) => done,
        None => {
            // The first attempt's program, if any, is not needed any more.
            *keep = None;
            let program = keep.insert(build(
                &job,
                job.contract.as_ref(),
                &Sink::Direct(message_sink()),
                color,
            )?);
            let value = program.eval_full_for_export().map_err(|err| {
                let rendered = if job.brief {
                    brief(&mut program.files(), err, &job.main)
                } else {
                    report_as_str(&mut program.files(), err, color)
                };
                ConfigError::Nickel { rendered }
            })?;
            serialize::validate(ExportFormat::Json, &value).map_err(|err| {
                let err = Error::export_error(program.pos_table().clone(), err);
                ConfigError::Nickel {
                    rendered: report_as_str(&mut program.files(), err, color),
                }
            })?;
            let json = serde_json::to_value(&value).map_err(|e| {
                ConfigError::Internal(format!("cannot convert the evaluated configuration: {e}"))
            })?;
            (value, json, BTreeSet::new())
        }
    };
    let program = keep.as_ref().expect("the evaluated program is kept");
    let positions = positions::collect(
        &value,
        &program.files(),
        program.pos_table(),
        &job.workspace_dir,
        &job.main,
    );
    if job.check_value_depth {
        if let Some(deep) = prov_state::find_too_deep(&json, prov_state::MAX_VALUE_DEPTH) {
            return Err(too_deep(&job.workspace_dir, &job.main, &positions, deep));
        }
    }
    let mut defaults = super::defaults::collect(&value);
    defaults.extend(filled);
    Ok(Output {
        value: json,
        positions,
        defaults,
        rust_checked,
    })
}
