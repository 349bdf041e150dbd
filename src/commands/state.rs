//! `prov state list|show|rm|mv|pull|push|history` and `prov force-unlock`: read and edit the recorded resources.

use super::{CmdResult, Failure};
use crate::cli::StateCommand;
use crate::context::{Access, Context};
use crate::render::text::value;
use prov_engine::crypt::Content;
use prov_engine::model::Address;
use prov_engine::state_edit;
use prov_engine::workspace::Workspace;
use prov_state::{format_utc, ResourceRecord, StateDump};
use std::time::Duration;

/// A record fit to show: values at its sensitive paths replaced.
pub fn redacted(r: &ResourceRecord) -> ResourceRecord {
    let mut r = r.clone();
    for v in [&mut r.config, &mut r.attributes, &mut r.outputs] {
        prov_engine::sensitive::redact_value(v, &r.sensitive_paths);
    }
    for d in &mut r.deposed {
        for v in [&mut d.attributes, &mut d.outputs] {
            prov_engine::sensitive::redact_value(v, &r.sensitive_paths);
        }
    }
    r
}

pub fn print_record_attrs(r: &ResourceRecord) {
    let r = &redacted(r);
    for (title, v) in [("attributes", &r.attributes), ("outputs", &r.outputs)] {
        if let Some(o) = v.as_object().filter(|o| !o.is_empty()) {
            crate::outln!("  {title}:");
            let w = o.keys().map(String::len).max().unwrap_or(0);
            for (k, x) in o {
                crate::outln!("    {k:<w$} = {}", value(x));
            }
        }
    }
    if !r.dependencies.is_empty() {
        crate::outln!("  depends on: {}", r.dependencies.join(", "));
    }
    if r.protected {
        crate::outln!(
            "  protected: prevent_destroy was set (`prov state unprotect {}` lifts it)",
            r.address
        );
    }
    for d in &r.deposed {
        crate::outln!(
            "  deposed: {} (since {}; the next apply destroys it)",
            d.provider_id,
            format_utc(d.since)
        );
    }
}

fn parse(a: &str) -> Result<Address, Failure> {
    a.parse().map_err(Failure)
}

pub fn run(ctx: &Context, cmd: StateCommand) -> CmdResult {
    let ws = ctx.workspace(None)?;
    match cmd {
        StateCommand::List { lock } => list(ctx, &ws, lock.lock_timeout)?,
        StateCommand::Show {
            address,
            json,
            lock,
        } => show(ctx, &ws, &address, json, lock.lock_timeout)?,
        StateCommand::Rm { addresses, lock } => rm(ctx, &ws, &addresses, lock.lock_timeout)?,
        StateCommand::Mv {
            from,
            to,
            force,
            lock,
        } => mv(ctx, &ws, &from, &to, force, lock.lock_timeout)?,
        StateCommand::Pull { out, lock } => pull(ctx, &ws, out, lock.lock_timeout)?,
        StateCommand::Push { file, force, lock } => {
            push(ctx, &ws, &file, force, lock.lock_timeout)?
        }
        StateCommand::Unprotect { address, lock } => {
            unprotect(ctx, &ws, &address, lock.lock_timeout)?
        }
        StateCommand::History {
            address,
            json,
            lock,
        } => history(ctx, &ws, &address, json, lock.lock_timeout)?,
    }
    Ok(0)
}

fn list(ctx: &Context, ws: &Workspace, lock_timeout: Duration) -> Result<(), Failure> {
    let state = ctx.open_state(ws, None, "state list", lock_timeout, Access::Read)?;
    let snap = state.store.snapshot()?;
    for a in snap.resources.keys() {
        crate::outln!("{a}");
    }
    for (a, p) in &snap.pending {
        crate::errln!(
            "pending: {a} ({} started {}; `prov refresh` resolves it)",
            p.operation,
            format_utc(p.started_at)
        );
    }
    Ok(())
}

fn show(
    ctx: &Context,
    ws: &Workspace,
    address: &str,
    json: bool,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    parse(address)?;
    let state = ctx.open_state(ws, None, "state show", lock_timeout, Access::Read)?;
    let r = state.store.record(address)?.ok_or_else(|| {
        Failure(format!(
            "{address} is not in the state (see `prov state list`)"
        ))
    })?;
    if json {
        crate::outln!("{}", serde_json::to_string_pretty(&redacted(&r))?);
    } else {
        crate::outln!("{} ({}{})", r.address, r.implementation, id_note(&r));
        print_record_attrs(&r);
    }
    Ok(())
}

fn rm(
    ctx: &Context,
    ws: &Workspace,
    addresses: &[String],
    lock_timeout: Duration,
) -> Result<(), Failure> {
    for a in addresses {
        parse(a)?;
    }
    let state = existing(ctx, ws, "state rm", lock_timeout)?;
    let unreadable = state_edit::remove(&*state.store, addresses, lock_timeout)?;
    for u in unreadable {
        crate::errln!(
            "note: the record of {} could not be read ({}); removed anyway",
            u.address,
            u.detail
        );
    }
    for a in addresses {
        crate::outln!("Removed {a} from the state (the real object is untouched; `prov state history {a}` keeps its record).");
    }
    Ok(())
}

fn mv(
    ctx: &Context,
    ws: &Workspace,
    from: &str,
    to: &str,
    force: bool,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    state_edit::check_move(from, to, None)?;
    if !force {
        // The configuration says whether `to` is declared; --force skips evaluating it.
        let loaded = ctx.load(ws).map_err(|e| {
            Failure(format!(
                "cannot check {to} against the configuration (pass --force to move \
                 without checking): {e}"
            ))
        })?;
        let declared = |a: &Address| loaded.model.resources.contains_key(a);
        state_edit::check_move(from, to, Some(&declared))?;
    }
    let state = existing(ctx, ws, "state mv", lock_timeout)?;
    state_edit::move_record(&*state.store, from, to, lock_timeout)?;
    crate::outln!("Moved {from} to {to}.");
    Ok(())
}

fn pull(
    ctx: &Context,
    ws: &Workspace,
    out: Option<std::path::PathBuf>,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    let state = ctx.open_state(ws, None, "state pull", lock_timeout, Access::Read)?;
    let bytes = ctx
        .keys()?
        .seal(Content::StateDump, &state.store.dump()?.to_json());
    match out {
        Some(p) => write_private(&ctx.base.join(p), &bytes)?,
        None => crate::out::stdout_bytes(&bytes),
    }
    Ok(())
}

fn push(
    ctx: &Context,
    ws: &Workspace,
    file: &std::path::Path,
    force: bool,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    let path = ctx.base.join(file);
    let bytes =
        std::fs::read(&path).map_err(|e| Failure(format!("reading {}: {e}", path.display())))?;
    let bytes = ctx
        .keys()?
        .open(Content::StateDump, &bytes)
        .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
    let dump = StateDump::from_json(&bytes, &path.display().to_string())?;
    prov_engine::ops::check_dump(&dump)?;
    let state = ctx.open_state(ws, None, "state push", lock_timeout, Access::WholeState)?;
    let serial = state.store.replace_all(&dump, force)?;
    crate::outln!(
        "Pushed {} records; the state is now at serial {serial}.",
        dump.resources.len()
    );
    Ok(())
}

fn unprotect(
    ctx: &Context,
    ws: &Workspace,
    address: &str,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    parse(address)?;
    let state = existing(ctx, ws, "state unprotect", lock_timeout)?;
    if state_edit::unprotect(&*state.store, address, lock_timeout)? {
        crate::outln!(
            "Lifted the protection of {address}: plans may destroy or replace it unless \
             its configuration sets lifecycle.prevent_destroy."
        );
    } else {
        crate::outln!("{address} is not protected in the state; nothing was changed.");
    }
    Ok(())
}

fn history(
    ctx: &Context,
    ws: &Workspace,
    address: &str,
    json: bool,
    lock_timeout: Duration,
) -> Result<(), Failure> {
    parse(address)?;
    let state = ctx.open_state(ws, None, "state history", lock_timeout, Access::Read)?;
    let h = state.store.history(address)?;
    if json {
        let v: Vec<serde_json::Value> = h
            .iter()
            .map(|e| serde_json::json!({"serial": e.serial, "at": e.at, "replaced_by": e.replaced_by, "record": redacted(&e.record)}))
            .collect();
        crate::outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if h.is_empty() {
        crate::outln!("No earlier versions of {address} are kept.");
    } else {
        for e in &h {
            crate::outln!(
                "serial {} ({}, {}): {}{}",
                e.serial,
                format_utc(e.at),
                e.replaced_by,
                e.record.address,
                id_note(&e.record)
            );
            print_record_attrs(&e.record);
        }
    }
    Ok(())
}

/// The state, for a verb that edits records: it must exist already.
fn existing(
    ctx: &Context,
    ws: &Workspace,
    operation: &str,
    lock_timeout: Duration,
) -> Result<crate::context::OpenState, Failure> {
    Ok(ctx.open_state(
        ws,
        None,
        operation,
        lock_timeout,
        Access::Write { create: false },
    )?)
}

fn id_note(r: &ResourceRecord) -> String {
    r.provider_id
        .as_ref()
        .map(|i| format!(", id {i}"))
        .unwrap_or_default()
}

/// Writes a file only its owner can read: pulled states hold everything prov knows.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<(), Failure> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Failure(format!("writing {}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| Failure(format!("writing {}: {e}", path.display())))
}

/// `prov force-unlock LOCK_ID`.
pub fn force_unlock(ctx: &Context, lock_id: &str) -> CmdResult {
    let ws = ctx.workspace(None)?;
    let outcome = match ctx.backend(&ws, None)? {
        crate::context::Backend::Sled { dir } => prov_state::force_unlock_sled(&dir, lock_id)?,
        crate::context::Backend::Pg { conn, workspace } => {
            prov_state::force_unlock_pg(&conn, &workspace, lock_id)?
        }
    };
    match outcome {
        prov_state::ForceUnlock::StaleNoteCleared(h) => crate::outln!(
            "Cleared the lock note left by {}@{} (pid {}, operation {:?}, since {}); its process had already released the lock.",
            h.user,
            h.host,
            h.pid,
            h.operation,
            format_utc(h.since)
        ),
        prov_state::ForceUnlock::ResourceLocksCleared { holder: h, addresses } => crate::outln!(
            "Cleared {} resource lock(s) of {}@{} (pid {}, operation {:?}, since {}): {}.",
            addresses.len(),
            h.user,
            h.host,
            h.pid,
            h.operation,
            format_utc(h.since),
            addresses.join(", ")
        ),
    }
    Ok(0)
}
