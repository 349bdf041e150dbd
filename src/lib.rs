//! The `prov` CLI as a library: the binary's `main` calls `run`; tests use the renderers directly.

pub mod cli;
pub mod commands;
pub mod context;
pub mod exttest;
pub mod fuzzing;
pub mod out;
pub mod render;

use clap::Parser;

/// Parses the command line, runs the command, returns the exit code.
pub fn run() -> u8 {
    // Usage errors exit 1, not clap's 2: pipelines read 2 as "changes present".
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let ctx = match context::Context::new(&cli.global) {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("error: {e}");
            return 1;
        }
    };
    commands::run(&ctx, cli.command)
}
