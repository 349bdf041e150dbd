//! `prov taskserv list|status|versions|check-updates|restart`: each calls one function
//! (`prov_taskservs::available` or `prov_engine::taskserv_ops`) and renders a table or JSON.

use super::{runtime, CmdResult};
use crate::cli::{LockArgs, TaskservCommand};
use crate::context::Context;
use crate::render::table::table;
use prov_engine::taskserv_ops::{self, TaskservReport};
use serde::Serialize;

fn opt(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "-".into())
}

/// Exit 1 when any query failed (the table still shows every row).
fn code<T: Serialize>(r: &[TaskservReport<T>]) -> u8 {
    u8::from(r.iter().any(|x| x.error.is_some()))
}

pub fn run(ctx: &Context, cmd: TaskservCommand) -> CmdResult {
    match cmd {
        TaskservCommand::List { json } => list(ctx, json),
        TaskservCommand::Status { filter, json, lock } => status(ctx, filter, json, &lock),
        TaskservCommand::Versions { filter, json, lock } => versions(ctx, filter, json, &lock),
        TaskservCommand::CheckUpdates {
            filter,
            json,
            detailed_exitcode,
            lock,
        } => check_updates(ctx, filter, json, detailed_exitcode, &lock),
        TaskservCommand::Restart { filter, json, lock } => restart(ctx, filter, json, &lock),
    }
}

/// `prov taskserv list`: the taskservs the workspace can use, with their needs and source.
fn list(ctx: &Context, j: bool) -> CmdResult {
    let ws = ctx.workspace(None)?;
    let roots = prov_engine::extension::search_path(&ws.dir);
    let list = prov_taskservs::available(&roots)?;
    if j {
        return super::json(&list);
    }
    let rows: Vec<Vec<String>> = list
        .into_iter()
        .map(|a| {
            vec![
                a.name,
                a.version,
                if a.dependencies.is_empty() {
                    "-".into()
                } else {
                    a.dependencies.join(",")
                },
                a.source,
                a.description,
            ]
        })
        .collect();
    crate::out!(
        "{}",
        table(
            &["NAME", "VERSION", "NEEDS", "SOURCE", "DESCRIPTION"],
            &rows
        )
    );
    Ok(0)
}

/// `prov taskserv status`: installed, running and healthy, per recorded taskserv.
fn status(ctx: &Context, filter: Option<String>, j: bool, lock: &LockArgs) -> CmdResult {
    let rt = runtime()?;
    let r = super::query(ctx, lock, "taskserv status", |l, s| {
        rt.block_on(taskserv_ops::status(&l.bound, s, filter.as_deref()))
    })?;
    if j {
        super::json(&r)?;
        return Ok(code(&r));
    }
    let rows: Vec<Vec<String>> = r
        .iter()
        .map(|x| match (&x.result, &x.error) {
            (Some(s), _) => vec![
                x.address.clone(),
                x.implementation.clone(),
                if s.installed { "yes" } else { "no" }.into(),
                if s.running { "yes" } else { "no" }.into(),
                match s.healthy {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
                opt(&s.version),
                opt(&x.recorded_version),
            ],
            (_, e) => vec![
                x.address.clone(),
                x.implementation.clone(),
                format!("error: {}", e.clone().unwrap_or_default()),
            ],
        })
        .collect();
    crate::out!(
        "{}",
        table(
            &[
                "ADDRESS",
                "TASKSERV",
                "INSTALLED",
                "RUNNING",
                "HEALTHY",
                "VERSION",
                "RECORDED"
            ],
            &rows
        )
    );
    Ok(code(&r))
}

/// `prov taskserv versions`: the recorded version and those the source offers.
fn versions(ctx: &Context, filter: Option<String>, j: bool, lock: &LockArgs) -> CmdResult {
    let rt = runtime()?;
    let r = super::query(ctx, lock, "taskserv versions", |l, s| {
        rt.block_on(taskserv_ops::versions(&l.bound, s, filter.as_deref()))
    })?;
    if j {
        super::json(&r)?;
        return Ok(code(&r));
    }
    let rows: Vec<Vec<String>> = r
        .iter()
        .map(|x| {
            vec![
                x.address.clone(),
                opt(&x.recorded_version),
                match (&x.result, &x.error) {
                    (Some(v), _) if v.is_empty() => "(none offered)".into(),
                    (Some(v), _) => v.join(" "),
                    (_, e) => format!("error: {}", e.clone().unwrap_or_default()),
                },
            ]
        })
        .collect();
    crate::out!("{}", table(&["ADDRESS", "INSTALLED", "AVAILABLE"], &rows));
    Ok(code(&r))
}

/// `prov taskserv check-updates`: current and latest; `--detailed-exitcode` exits 2 when one is behind.
fn check_updates(
    ctx: &Context,
    filter: Option<String>,
    j: bool,
    detailed_exitcode: bool,
    lock: &LockArgs,
) -> CmdResult {
    let rt = runtime()?;
    let r = super::query(ctx, lock, "taskserv check-updates", |l, s| {
        rt.block_on(taskserv_ops::check_updates(&l.bound, s, filter.as_deref()))
    })?;
    let any = r
        .iter()
        .any(|x| x.result.as_ref().is_some_and(|u| u.update_available));
    let exit = match (code(&r), detailed_exitcode && any) {
        (1, _) => 1,
        (_, true) => 2,
        _ => 0,
    };
    if j {
        super::json(&r)?;
        return Ok(exit);
    }
    let rows: Vec<Vec<String>> = r
        .iter()
        .map(|x| match (&x.result, &x.error) {
            (Some(u), _) => vec![
                x.address.clone(),
                opt(&u.current),
                opt(&u.latest),
                if u.update_available {
                    "update available"
                } else {
                    "up to date"
                }
                .into(),
            ],
            (_, e) => vec![
                x.address.clone(),
                "-".into(),
                "-".into(),
                format!("error: {}", e.clone().unwrap_or_default()),
            ],
        })
        .collect();
    crate::out!("{}", table(&["ADDRESS", "CURRENT", "LATEST", ""], &rows));
    Ok(exit)
}

/// `prov taskserv restart`: restarts each recorded taskserv the filter selects.
fn restart(ctx: &Context, filter: Option<String>, j: bool, lock: &LockArgs) -> CmdResult {
    let rt = runtime()?;
    let r = super::query(ctx, lock, "taskserv restart", |l, s| {
        rt.block_on(taskserv_ops::restart(&l.bound, s, filter.as_deref()))
    })?;
    if j {
        super::json(&r)?;
        return Ok(code(&r));
    }
    for x in &r {
        match &x.error {
            None => crate::outln!("{}: restarted", x.address),
            Some(e) => crate::outln!("{}: error: {e}", x.address),
        }
    }
    Ok(code(&r))
}
