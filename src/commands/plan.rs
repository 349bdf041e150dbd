//! `prov plan`: evaluate, diff against the state, print (text, Markdown or Terraform-shaped JSON), optionally save.

use super::CmdResult;
use crate::cli::{LockArgs, PlanArgs, PlanFormat, ReportArgs};
use crate::context::Context;
use crate::render::{print_plan_report, Paint};
use prov_engine::model::Address;
use prov_engine::ops;
use prov_engine::plan::file as planfile;
use prov_engine::plan::make::PlanOptions;
use prov_engine::workspace;
use std::path::Path;

/// Turns the plan flags into engine options, validating each address.
pub fn options(a: &PlanArgs) -> Result<PlanOptions, super::Failure> {
    let parse = |v: &[String], flag: &str| -> Result<Vec<Address>, super::Failure> {
        v.iter()
            .map(|s| {
                s.parse()
                    .map_err(|e| super::Failure(format!("{flag} {s}: {e}")))
            })
            .collect()
    };
    Ok(PlanOptions {
        refresh: a.refresh.enabled(),
        refresh_changed: a.refresh == crate::cli::Refresh::Changed,
        refresh_only: a.refresh_only,
        refresh_opts: prov_engine::drift::RefreshOptions {
            parallelism: a.refresh_parallelism,
            ..Default::default()
        },
        destroy: a.destroy,
        targets: parse(&a.targets, "--target")?,
        replace: parse(&a.replace, "--replace")?,
        adopt: a.adopt,
        cost: !a.no_cost,
        untrusted: false,
    })
}

// One argument per flag group of `prov plan`, as the dispatcher destructures them.
#[allow(clippy::too_many_arguments)]
pub fn run(
    ctx: &Context,
    dir: Option<&Path>,
    args: &PlanArgs,
    out: Option<&Path>,
    detailed: bool,
    report: &ReportArgs,
    untrusted: bool,
    lock: &LockArgs,
) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let mut opts = options(args)?;
    opts.untrusted = untrusted;
    let mut eval = ctx.eval_options();
    eval.confined = untrusted;
    let early = ctx.may_read_state_early(&ws);
    // The runtime comes first: the plan's refresh starts on it before the model is built.
    let rt = super::runtime()?;
    let workspace::LoadedWithState {
        loaded,
        state,
        started,
    } = workspace::load_with_state(
        &ws,
        &ctx.registry(&ws)?,
        &eval,
        early,
        |config| {
            // Plans lock nothing: they read one consistent snapshot, beside running applies.
            let operation = if untrusted {
                "plan --untrusted"
            } else {
                "plan"
            };
            ctx.open_state(
                &ws,
                Some(config),
                operation,
                lock.lock_timeout,
                crate::context::Access::Read,
            )
            .map_err(prov_engine::error::EngineError::StateOpen)
        },
        |bound, state, snapshot| {
            ops::start_plan(rt.handle(), bound, &*state.store, snapshot, &opts)
        },
    )?;
    let mut plan = rt.block_on(ops::plan_started(&loaded, &*state.store, started, &opts))?;
    // A saved plan names its state, so applying it opens that one without evaluating main.ncl.
    plan.backend = Some(state.backend.reference());
    if let Some(path) = out {
        planfile::write(&ctx.base.join(path), &plan, ctx.keys()?)?;
    }
    let full_plan = match out {
        Some(path) => format!("`prov show {}`", path.display()),
        None => "the text of `prov plan` (e.g. in the job log)".to_string(),
    };
    print_plan_report(
        &plan,
        report,
        &full_plan,
        ctx.keys()?,
        Paint { on: ctx.color },
    )?;
    if report.format() == PlanFormat::Text {
        if let Some(path) = out {
            crate::outln!(
                "\nSaved the plan to {}. Apply exactly this plan with:\n  {}",
                path.display(),
                apply_hint(ctx, &ws.dir, &ctx.base.join(path))
            );
        }
    }
    let changed = plan.has_changes();
    // Large configurations and plans are freed faster by the process exit than by destructors.
    std::mem::forget(plan);
    std::mem::forget(loaded);
    drop(state);
    if args.expect_no_changes && changed {
        return Err(super::Failure(
            "--expect-no-changes: the plan above has changes".into(),
        ));
    }
    Ok(if detailed && changed { 2 } else { 0 })
}

/// The command that applies the saved plan `plan` of the workspace `ws`, run from where prov
/// was started: `prov -C WS apply PLAN` with PLAN relative to WS (apply reads a saved plan's
/// path from its `-C` directory), the flags that choose the state and the key repeated, each
/// word quoted for a POSIX shell when it needs it.
fn apply_hint(ctx: &Context, ws: &Path, plan: &Path) -> String {
    let mut words = vec!["prov".to_string()];
    if let Some(b) = &ctx.backend_flag {
        words.extend(["--backend".into(), b.clone()]);
    }
    if let Some(k) = &ctx.key_file {
        words.extend(["--encryption-key-file".into(), k.display().to_string()]);
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    let plan_arg = if same(ws, Path::new(".")) {
        plan.to_path_buf()
    } else {
        words.extend(["-C".into(), clean(ws).display().to_string()]);
        relative_to(ws, plan)
    };
    words.extend(["apply".into(), clean(&plan_arg).display().to_string()]);
    words
        .iter()
        .map(|w| shell_quote(w))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `p` without `.` components (`./infra/./prod` → `infra/prod`; `.` stays).
fn clean(p: &Path) -> std::path::PathBuf {
    let c: std::path::PathBuf = p
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    if c.as_os_str().is_empty() {
        ".".into()
    } else {
        c
    }
}

/// `target` as a path relative to the directory `from` (absolute when either cannot be
/// resolved, or `target` was given absolute).
fn relative_to(from: &Path, target: &Path) -> std::path::PathBuf {
    if target.is_absolute() {
        return target.to_path_buf();
    }
    let (Ok(from), Some(parent), Some(name)) = (
        from.canonicalize(),
        target.parent().map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        }),
        target.file_name(),
    ) else {
        return std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    };
    let Ok(to) = parent.canonicalize() else {
        return std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    };
    let a: Vec<_> = from.components().collect();
    let b: Vec<_> = to.components().collect();
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out.push(name);
    out
}

/// A word as a POSIX shell reads it back: bare when it only holds safe characters, otherwise
/// in single quotes (a `'` inside written as `'\''`).
fn shell_quote(w: &str) -> String {
    let safe = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if safe {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn words_are_quoted_for_a_posix_shell() {
        assert_eq!(shell_quote("infra/prod"), "infra/prod");
        assert_eq!(shell_quote("my plan.bin"), "'my plan.bin'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
    }
}
