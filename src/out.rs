//! Every line the CLI writes goes through here: a reader that went away never panics prov.
//!
//! `println!` panics when stdout is a pipe whose reader has gone (`prov state list | head -1`):
//! Rust ignores SIGPIPE, so the write fails with EPIPE and the macro panics. Restoring SIGPIPE's
//! default would kill an apply half-way instead. So output to a closed stdout (or stderr) is
//! dropped quietly and the command carries on to its normal end and exit code; an apply
//! finishes and records every step. Any other write error on stdout (disk full behind
//! `> file`) is remembered and turns the exit code into 1 at the end (see [`finish`]), because a
//! silently truncated `prov state pull > backup.json` would be worse than an error.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// stdout stopped taking output (EPIPE or another error): later writes are skipped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// The first stdout write error that was not a closed pipe.
static STDOUT_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout_fmt(format_args!($($arg)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::out::stdout_fmt(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::stdout_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` that never panics (a closed stderr loses the message, nothing else).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => { $crate::out::stderr_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

pub fn stdout_fmt(args: std::fmt::Arguments) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let r = std::io::stdout().lock().write_fmt(args);
    note(r);
}

pub fn stdout_bytes(bytes: &[u8]) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let r = std::io::stdout().lock().write_all(bytes);
    note(r);
}

pub fn stderr_fmt(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Flushes stdout (a prompt without a newline).
pub fn flush() {
    if !STDOUT_GONE.load(Ordering::Relaxed) {
        note(std::io::stdout().flush());
    }
}

fn note(r: std::io::Result<()>) {
    if let Err(e) = r {
        STDOUT_GONE.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            let mut first = STDOUT_ERROR.lock().unwrap_or_else(|p| p.into_inner());
            first.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Flushes stdout at the end of a command: the write error to report, if output was lost for
/// any reason other than its reader going away.
pub fn finish() -> Option<String> {
    flush();
    STDOUT_ERROR
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
}

/// A `fmt::Write` to stdout for output too large to build whole first (the text plan of
/// 10,000 resources): written through [`stdout_bytes`] in pieces of 64 KiB, the rest when
/// dropped.
#[derive(Default)]
pub struct Stdout {
    buf: String,
}

impl std::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.buf.push_str(s);
        if self.buf.len() >= 64 * 1024 {
            stdout_bytes(self.buf.as_bytes());
            self.buf.clear();
        }
        Ok(())
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            stdout_bytes(self.buf.as_bytes());
        }
    }
}
