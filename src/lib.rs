//! The `prov` CLI as a library: the binary's `main` calls `run`; tests use the renderers directly.

// Functions read as what they do (clippy.toml: 100 lines); a longer one says why it is allowed.
#![warn(clippy::too_many_lines)]

pub mod alloc;
pub mod cli;
pub mod commands;
pub mod context;
pub mod exttest;
pub mod fuzzing;
pub mod out;
pub mod render;

use clap::{ArgMatches, CommandFactory, FromArgMatches};

/// Parses the command line, runs the command, returns the exit code.
pub fn run() -> u8 {
    // Usage errors exit 1, not clap's 2: pipelines read 2 as "changes present".
    let parsed = cli::Cli::command()
        .try_get_matches()
        .and_then(|m| cli::Cli::from_arg_matches(&m).map(|c| (wants_json(&m), c)));
    let (json, cli) = match parsed {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 1 } else { 0 };
        }
    };
    let mut ctx = match context::Context::new(&cli.global) {
        Ok(c) => c,
        Err(e) => {
            crate::errln!("error: {e}");
            if json {
                crate::outln!("{}", render::json_error(&e));
            }
            return 1;
        }
    };
    ctx.json_errors = json;
    commands::run(&ctx, cli.command)
}

/// Whether the command asked for JSON output (`--json`, `--format json`, at any subcommand
/// level): its errors are then JSON on stdout too, so a pipeline's `jq` reads them.
fn wants_json(m: &ArgMatches) -> bool {
    let json = matches!(m.try_get_one::<bool>("json"), Ok(Some(true)));
    let format = matches!(
        m.try_get_one::<cli::PlanFormat>("format"),
        Ok(Some(cli::PlanFormat::Json))
    );
    json || format || m.subcommand().is_some_and(|(_, sub)| wants_json(sub))
}
