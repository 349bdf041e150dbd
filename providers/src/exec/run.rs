//! Runs an exec provider's executable once: one JSON request on stdin, stdout and stderr
//! captured, a deadline after which the whole process group is killed (prov-engine's
//! `subprocess`, the one runner of extension processes).

use prov_engine::subprocess::Cmd;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use prov_engine::subprocess::{describe, Output, RunError};

/// How many trailing stderr lines errors quote.
pub const STDERR_LINES: usize = 10;

/// The program to run and where.
#[derive(Debug, Clone)]
pub struct Program {
    pub command: PathBuf,
    pub args: Vec<String>,
    pub dir: PathBuf,
}

/// Runs `p` in its directory with `input` on stdin, killing its process group after `timeout`.
pub async fn run(p: &Program, input: &[u8], timeout: Duration) -> Result<Output, RunError> {
    Cmd::new(&p.command)
        .args(&p.args)
        .current_dir(&p.dir)
        .stdin(input)
        .timeout(timeout)
        .run()
        .await
}

/// The last `n` non-empty lines of `bytes`, joined with " | " for one-line errors.
pub fn tail(bytes: &[u8], n: usize) -> String {
    prov_engine::subprocess::tail(bytes, n, " | ")
}

/// True when `path` is a file someone may execute.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
