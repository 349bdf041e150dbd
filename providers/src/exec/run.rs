//! Runs an exec provider's executable once: one JSON request on stdin, stdout and stderr
//! captured, a deadline after which the whole process group is killed.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// How many trailing stderr lines errors quote.
pub const STDERR_LINES: usize = 10;

/// What one run produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

#[derive(Debug)]
pub enum RunError {
    /// The executable could not be started.
    Spawn(std::io::Error),
    /// No exit within the deadline; the process group was killed. Carries what stderr said.
    Timeout {
        stderr: Vec<u8>,
    },
    Io(std::io::Error),
}

/// The program to run and where.
#[derive(Debug, Clone)]
pub struct Program {
    pub command: PathBuf,
    pub args: Vec<String>,
    pub dir: PathBuf,
}

/// Reads a pipe to its end into a shared buffer, so partial output survives a timeout.
fn collect<R: AsyncRead + Unpin + Send + 'static>(
    mut r: R,
) -> (Arc<Mutex<Vec<u8>>>, tokio::task::JoinHandle<()>) {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let b = buf.clone();
    let task = tokio::spawn(async move {
        let mut chunk = [0u8; 8192];
        loop {
            match r.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => b
                    .lock()
                    .expect("pipe buffer")
                    .extend_from_slice(&chunk[..n]),
            }
        }
    });
    (buf, task)
}

fn take(buf: &Arc<Mutex<Vec<u8>>>) -> Vec<u8> {
    std::mem::take(&mut *buf.lock().expect("pipe buffer"))
}

/// Runs `p` with `input` on stdin. The child leads its own process group, so a timeout kills
/// everything it started too.
pub async fn run(p: &Program, input: &[u8], timeout: Duration) -> Result<Output, RunError> {
    let mut cmd = tokio::process::Command::new(&p.command);
    cmd.args(&p.args)
        .current_dir(&p.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(RunError::Spawn)?;
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let (out, out_task) = collect(child.stdout.take().expect("stdout is piped"));
    let (err, err_task) = collect(child.stderr.take().expect("stderr is piped"));
    let input = input.to_vec();
    // A program that exits without reading its input closes the pipe: not our error.
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&input).await;
        let _ = stdin.shutdown().await;
    });
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            let status = status.map_err(RunError::Io)?;
            writer.abort();
            // Grandchildren may still hold the pipes; the program's own output is complete.
            let grace = Duration::from_secs(2);
            let _ = tokio::time::timeout(grace, out_task).await;
            let _ = tokio::time::timeout(grace, err_task).await;
            Ok(Output {
                status,
                stdout: take(&out),
                stderr: take(&err),
            })
        }
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid);
            }
            let _ = child.kill().await;
            writer.abort();
            let grace = Duration::from_millis(500);
            let _ = tokio::time::timeout(grace, err_task).await;
            out_task.abort();
            Err(RunError::Timeout { stderr: take(&err) })
        }
    }
}

/// SIGKILL to the process group `pgid` (the child's pid: it called setpgid(0, 0)).
fn kill_group(pgid: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(pgid) {
        if pgid > 1 {
            // SAFETY: kill(2) with a negative pid signals that process group; no memory is shared.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
}

/// The last `n` non-empty lines of `bytes`, joined with " | " for one-line errors.
pub fn tail(bytes: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// "exit code 3" or "killed by signal 9".
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown exit status".into(),
    }
}

/// True when `path` is a file someone may execute.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
