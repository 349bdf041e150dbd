//! The Nickel evaluation proper, run on a dedicated thread with a large stack: Nickel's values are
//! not `Send` and deep recursion in its typechecker and evaluator needs far more than the usual
//! 2–8 MiB. Only serde_json values and rendered strings leave the thread.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;

use nickel_lang_core::error::report::{report_as_str, ColorOpt};
use nickel_lang_core::error::{warning::Warning, Error, Reporter};
use nickel_lang_core::eval::cache::CacheImpl;
use nickel_lang_core::files::Files;
use nickel_lang_core::program::{BuilderError, Program, ProgramBuilder};
use nickel_lang_core::serialize::{self, ExportFormat};

use super::{positions, ConfigError};

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
    pub color: bool,
}

/// The thread's result.
pub(crate) struct Output {
    pub value: serde_json::Value,
    pub positions: BTreeMap<String, String>,
}

/// Evaluate `job` on a fresh thread and wait for the result. A panic inside Nickel becomes
/// [`ConfigError::Internal`]. The result is sent back before the Nickel program is dropped
/// (dropping a large program takes a noticeable time), so the caller does not wait for it.
pub(crate) fn run(job: Job) -> Result<Output, ConfigError> {
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
    match rx.recv() {
        Ok(result) => result,
        // The sender was dropped without sending: the thread panicked.
        Err(mpsc::RecvError) => Err(ConfigError::Internal(match handle.join() {
            Err(panic) => format!("the Nickel evaluation panicked: {}", panic_message(&*panic)),
            Ok(()) => "the Nickel evaluation thread ended without a result".into(),
        })),
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

/// Writes Nickel's warnings to stderr, rendered like errors.
struct StderrReporter {
    color: ColorOpt,
}

impl Reporter<(Warning, Files)> for StderrReporter {
    fn report(&mut self, (warning, mut files): (Warning, Files)) {
        eprint!("{}", report_as_str(&mut files, warning, self.color));
    }
}

/// Build and evaluate the program. The program is parked in `keep` so that the caller can drop
/// it after handing the result over.
fn evaluate(job: Job, keep: &mut Option<Program<CacheImpl>>) -> Result<Output, ConfigError> {
    let color = if job.color {
        ColorOpt::Always
    } else {
        ColorOpt::Never
    };
    let program = ProgramBuilder::new()
        .add_path(&job.main)
        .add_import_paths([job.lib_dir.clone()])
        .add_contract_paths(job.contract.iter())
        .with_trace(std::io::stderr())
        .with_reporter(StderrReporter { color })
        .build::<CacheImpl>()
        .map_err(|e| match e {
            BuilderError::Io { path, error } => ConfigError::Io {
                path: path.unwrap_or_else(|| job.main.clone()),
                source: error,
            },
            other => ConfigError::Internal(other.to_string()),
        })?;
    let program = keep.insert(program);

    let value = program
        .eval_full_for_export()
        .map_err(|err| ConfigError::Nickel {
            rendered: report_as_str(&mut program.files(), err, color),
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

    let positions = positions::collect(
        &value,
        &program.files(),
        program.pos_table(),
        &job.workspace_dir,
        &job.main,
    );
    Ok(Output {
        value: json,
        positions,
    })
}
