//! One way for extension implementations to run a child process: arguments, environment, working
//! directory and stdin; stdout kept, stderr kept up to a bounded tail, lines streamed as they
//! come; a deadline after which the child's whole process group is killed.
//!
//! The exec provider's programs, the taskserv transports (local bash, OpenSSH) and the local
//! provider's tools (`ip`, `nft`, `sshd`, ...) all run through [`Cmd::run`], so a timeout, a
//! killed grandchild and a quoted stderr tail behave the same everywhere.

use crate::traits::OutputFn;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// How much of the end of stderr a run keeps (errors quote only its last lines; a chatty or
/// runaway program must not grow prov's memory).
pub const STDERR_KEEP: usize = 64 * 1024;

/// How long a finished child's pipes may stay open (daemons it started inherit them) before the
/// output read so far is taken as complete.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// One command line to run.
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: BTreeMap<OsString, OsString>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
    lines: Option<OutputFn>,
    stderr_keep: usize,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Environment values and stdin may be secrets: only the command line is shown.
        f.debug_struct("Cmd")
            .field("command", &self.display())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Cmd {
    /// `program` (a path, or a name looked up on `PATH`) with no arguments, the parent's
    /// environment and working directory, a closed stdin and no deadline.
    pub fn new(program: impl Into<OsString>) -> Cmd {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            dir: None,
            env: BTreeMap::new(),
            stdin: None,
            timeout: None,
            lines: None,
            stderr_keep: STDERR_KEEP,
        }
    }
    pub fn arg(mut self, arg: impl Into<OsString>) -> Cmd {
        self.args.push(arg.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Cmd {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }
    /// One variable added to the inherited environment.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Cmd {
        self.env.insert(key.into(), value.into());
        self
    }
    /// Variables added to the inherited environment.
    pub fn envs<I, K, V>(mut self, vars: I) -> Cmd
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }
    /// Bytes written to the child's stdin, which is then closed (stdin is `/dev/null` without).
    /// A child that exits without reading them is not an error.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Cmd {
        self.stdin = Some(input.into());
        self
    }
    /// Kills the child's process group when it has not exited after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Cmd {
        self.timeout = Some(timeout);
        self
    }
    /// Calls `f` with each line of stdout and stderr as it arrives (without its line end).
    pub fn on_line(mut self, f: Option<OutputFn>) -> Cmd {
        self.lines = f;
        self
    }
    /// Keeps at most the last `bytes` of stderr instead of [`STDERR_KEEP`].
    pub fn stderr_keep(mut self, bytes: usize) -> Cmd {
        self.stderr_keep = bytes.max(1);
        self
    }

    /// The program's name as given (for messages).
    pub fn program(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// The command line, space-separated (for messages; no quoting).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command to completion or its deadline. The child leads a process group of its
    /// own, so a timeout also kills whatever it started in that group; a child that exits
    /// normally leaves its background processes alone. An exit status other than 0 is an
    /// [`Output`], not an error: only failing to start, to wait, and the deadline are errors.
    pub async fn run(&self) -> Result<Output, RunError> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .envs(&self.env)
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(d) = &self.dir {
            cmd.current_dir(d);
        }
        let mut child = cmd.spawn().map_err(|source| RunError::Spawn {
            program: self.program(),
            source,
        })?;
        let pid = child.id();
        let writer = match (self.stdin.clone(), child.stdin.take()) {
            (Some(input), Some(mut pipe)) => Some(tokio::spawn(async move {
                // A program that exits without reading its input closes the pipe: not our error.
                let _ = pipe.write_all(&input).await;
                let _ = pipe.shutdown().await;
            })),
            _ => None,
        };
        let out = Collector::start(
            child.stdout.take().expect("stdout is piped"),
            usize::MAX,
            self.lines.clone(),
        );
        let err = Collector::start(
            child.stderr.take().expect("stderr is piped"),
            self.stderr_keep,
            self.lines.clone(),
        );
        let waited = match self.timeout {
            Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
            None => Some(child.wait().await),
        };
        if let Some(w) = writer {
            w.abort();
        }
        match waited {
            Some(status) => {
                let status = status.map_err(|source| RunError::Io {
                    program: self.program(),
                    source,
                })?;
                let (stdout, _) = out.finish(PIPE_GRACE).await;
                let (stderr, stderr_dropped) = err.finish(PIPE_GRACE).await;
                Ok(Output {
                    status,
                    stdout,
                    stderr,
                    stderr_dropped,
                })
            }
            None => {
                if let Some(pid) = pid {
                    kill_group(pid);
                }
                let _ = child.kill().await;
                let (stderr, _) = err.finish(Duration::from_millis(500)).await;
                out.abort();
                Err(RunError::Timeout {
                    after: self.timeout.unwrap_or_default(),
                    stderr,
                })
            }
        }
    }
}

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// The last [`STDERR_KEEP`] bytes (or the command's own bound) of stderr.
    pub stderr: Vec<u8>,
    /// How many bytes of stderr were dropped from its beginning.
    pub stderr_dropped: usize,
}

impl Output {
    /// The exit code; `None` when a signal ended the child.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Why a command could not run to an exit status.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// No exit within the deadline: the process group was killed. Carries the stderr read so far.
    #[error("timed out after {}", seconds(*after))]
    Timeout { after: Duration, stderr: Vec<u8> },
    #[error("{program}: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// `5s`, or `0.25s` below a second.
fn seconds(d: Duration) -> String {
    if d.subsec_nanos() == 0 || d.as_secs() >= 10 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// A pipe read to its end on its own task into a shared buffer, so output read before a
/// timeout survives it.
struct Collector {
    buf: Arc<Mutex<Tail>>,
    task: JoinHandle<()>,
}

/// Bytes kept from a pipe: everything up to `keep`, then the last `keep` bytes.
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    dropped: usize,
    keep: usize,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
        // Trimmed when twice over the bound: amortised O(1) per byte.
        if self.bytes.len() > self.keep.saturating_mul(2) {
            let cut = self.bytes.len() - self.keep;
            self.bytes.drain(..cut);
            self.dropped += cut;
        }
    }
    fn take(&mut self) -> (Vec<u8>, usize) {
        if self.bytes.len() > self.keep {
            let cut = self.bytes.len() - self.keep;
            self.bytes.drain(..cut);
            self.dropped += cut;
        }
        (std::mem::take(&mut self.bytes), self.dropped)
    }
}

impl Collector {
    fn start<R: AsyncRead + Unpin + Send + 'static>(
        mut pipe: R,
        keep: usize,
        lines: Option<OutputFn>,
    ) -> Collector {
        let buf = Arc::new(Mutex::new(Tail {
            keep,
            ..Tail::default()
        }));
        let shared = buf.clone();
        let task = tokio::spawn(async move {
            let mut chunk = vec![0u8; 8192];
            let mut partial: Vec<u8> = Vec::new();
            loop {
                let n = match pipe.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                shared.lock().expect("pipe buffer").push(&chunk[..n]);
                if let Some(f) = &lines {
                    partial.extend_from_slice(&chunk[..n]);
                    while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = partial.drain(..=end).collect();
                        emit(f, &line);
                    }
                }
            }
            if let (Some(f), false) = (&lines, partial.is_empty()) {
                emit(f, &partial);
            }
        });
        Collector { buf, task }
    }

    /// Waits up to `grace` for the pipe's end, then takes what was read.
    async fn finish(self, grace: Duration) -> (Vec<u8>, usize) {
        let mut task = self.task;
        if tokio::time::timeout(grace, &mut task).await.is_err() {
            task.abort();
        }
        let taken = self.buf.lock().expect("pipe buffer").take();
        taken
    }

    fn abort(self) {
        self.task.abort();
    }
}

/// A line without its `\n` / `\r\n`, to the line callback.
fn emit(f: &OutputFn, line: &[u8]) {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    f(&String::from_utf8_lossy(line));
}

/// SIGKILL to the process group `pgid` (a child spawned by [`Cmd::run`] leads its own group).
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

/// The last `n` non-empty lines of `bytes`, joined with `sep` (" | " for one-line errors).
pub fn tail(bytes: &[u8], n: usize, sep: &str) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(sep)
}

/// "exit code 3" or "killed by signal 9".
pub fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown exit status".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Cmd {
        Cmd::new("sh").args(["-c", script])
    }

    #[tokio::test]
    async fn exit_codes_signals_and_output() {
        let out = sh("echo out; echo err >&2; exit 3").run().await.unwrap();
        assert_eq!(out.code(), Some(3));
        assert!(!out.success());
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(describe(&out.status), "exit code 3");
        let ok = sh("true").run().await.unwrap();
        assert!(ok.success() && ok.code() == Some(0));
        let killed = sh("kill -9 $$").run().await.unwrap();
        assert_eq!(killed.code(), None);
        assert_eq!(describe(&killed.status), "killed by signal 9");
    }

    #[tokio::test]
    async fn spawn_failures_name_the_program() {
        let e = Cmd::new("/nonexistent/prov-no-such-tool")
            .run()
            .await
            .unwrap_err();
        assert!(matches!(e, RunError::Spawn { .. }), "{e:?}");
        assert!(
            e.to_string().contains("/nonexistent/prov-no-such-tool"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn stdin_env_and_working_directory_reach_the_child() {
        let dir = tempfile::tempdir().unwrap();
        let out = sh("cat; printf ' %s ' \"$PROV_T\"; pwd")
            .env("PROV_T", "value")
            .stdin("input")
            .current_dir(dir.path())
            .run()
            .await
            .unwrap();
        let text = out.stdout_text();
        let pwd = dir.path().canonicalize().unwrap();
        assert_eq!(text, format!("input value {}\n", pwd.display()));
        // Without input, stdin is /dev/null: `cat` ends at once.
        let out = sh("cat; echo done")
            .timeout(Duration::from_secs(20))
            .run()
            .await
            .unwrap();
        assert_eq!(out.stdout, b"done\n");
        // A child that ignores its (large) input is not an error.
        let out = sh("exit 0").stdin(vec![b'x'; 1 << 20]).run().await.unwrap();
        assert!(out.success());
    }

    /// The deadline kills the whole group: the grandchild `sleep` does not outlive it.
    #[tokio::test]
    async fn timeout_kills_the_whole_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "sleep 300 & echo $! > {}; echo started >&2; wait",
            pidfile.display()
        );
        let started = std::time::Instant::now();
        let e = sh(&script)
            .timeout(Duration::from_millis(500))
            .run()
            .await
            .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(30));
        match &e {
            RunError::Timeout { after, stderr } => {
                assert_eq!(*after, Duration::from_millis(500));
                assert_eq!(
                    stderr, b"started\n",
                    "stderr read before the deadline is kept"
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().starts_with("timed out after"), "{e}");
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // The orphaned grandchild is reaped by whoever adopts it; until then it is a zombie.
        let gone = || {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !gone() && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(gone(), "grandchild {pid} survived the timeout");
    }

    #[tokio::test]
    async fn a_normal_exit_leaves_background_processes_alone() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // The background child keeps no pipe open, so the run ends at once.
        let script = format!(
            "sleep 300 </dev/null >/dev/null 2>&1 & echo $! > {}",
            pidfile.display()
        );
        let out = sh(&script)
            .timeout(Duration::from_secs(20))
            .run()
            .await
            .unwrap();
        assert!(out.success());
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        // SAFETY: kill(2) of the sleep this test started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }

    #[tokio::test]
    async fn stderr_keeps_a_bounded_tail() {
        // 1 MiB of noise, then the line an error would quote.
        let out = sh("head -c 1048576 /dev/zero | tr '\\0' x >&2; echo >&2; echo last words >&2")
            .stderr_keep(4096)
            .run()
            .await
            .unwrap();
        assert_eq!(out.stderr.len(), 4096);
        assert_eq!(
            out.stderr_dropped + 4096,
            1_048_576 + "\nlast words\n".len()
        );
        assert!(out.stderr.ends_with(b"last words\n"));
        assert_eq!(tail(&out.stderr, 1, " | "), "last words");
        // stdout is not bounded.
        let big = sh("head -c 200000 /dev/zero").run().await.unwrap();
        assert_eq!(big.stdout.len(), 200_000);
        assert_eq!(STDERR_KEEP, Cmd::new("x").stderr_keep);
    }

    #[tokio::test]
    async fn lines_stream_from_both_pipes() {
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let s = seen.clone();
        let f: OutputFn = Arc::new(move |l: &str| s.lock().unwrap().push(l.to_string()));
        let out = sh("echo one; echo two >&2; printf 'three\\r\\nfour'")
            .on_line(Some(f))
            .run()
            .await
            .unwrap();
        let mut got = seen.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["four", "one", "three", "two"]);
        assert_eq!(out.stdout, b"one\nthree\r\nfour");
    }

    #[test]
    fn tails_skip_blank_lines() {
        assert_eq!(tail(b"a\n\nb\n  \nc\n", 2, " | "), "b | c");
        assert_eq!(tail(b"", 3, "\n"), "");
        assert_eq!(tail(b"x", 3, "\n"), "x");
    }
}
