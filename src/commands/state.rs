//! `prov state list|show|rm|mv|pull|push|history` and `prov force-unlock`: read and edit the recorded resources.

use super::{CmdResult, Failure};
use crate::cli::StateCommand;
use crate::context::{Access, Context};
use crate::render::text::value;
use prov_engine::crypt::Content;
use prov_engine::model::Address;
use prov_state::{format_utc, Change, ResourceRecord, StateDump, StateError};

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
        StateCommand::List { lock } => {
            let state = ctx.open_state(&ws, None, "state list", lock.lock_timeout, Access::Read)?;
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
        }
        StateCommand::Show {
            address,
            json,
            lock,
        } => {
            parse(&address)?;
            let state = ctx.open_state(&ws, None, "state show", lock.lock_timeout, Access::Read)?;
            let r = state.store.record(&address)?.ok_or_else(|| {
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
        }
        StateCommand::Rm { addresses, lock } => {
            for a in &addresses {
                parse(a)?;
            }
            let state = ctx.open_state(
                &ws,
                None,
                "state rm",
                lock.lock_timeout,
                Access::Write { create: false },
            )?;
            let wanted = addresses.iter().cloned().collect();
            state.store.lock_resources(&wanted, lock.lock_timeout)?;
            for a in &addresses {
                match state.store.record(a) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(Failure(format!(
                            "{a} is not in the state; nothing was removed"
                        )))
                    }
                    // rm is how a user gets rid of a record that cannot be read (damaged, or
                    // nested deeper than any prov reads): its stored bytes go to history as
                    // they are.
                    Err(StateError::Corrupt {
                        address: Some(bad),
                        detail,
                        ..
                    }) if bad == *a => {
                        eprintln!(
                            "note: the record of {a} cannot be read ({detail}); removing it anyway"
                        );
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let changes: Vec<Change> = addresses
                .iter()
                .map(|a| Change::Delete(a.clone()))
                .collect();
            state.store.commit(&changes)?;
            for a in &addresses {
                crate::outln!("Removed {a} from the state (the real object is untouched; `prov state history {a}` keeps its record).");
            }
        }
        StateCommand::Mv {
            from,
            to,
            force,
            lock,
        } => {
            let (f, t) = (parse(&from)?, parse(&to)?);
            if f.kind() != t.kind() {
                return Err(Failure(format!(
                    "cannot move {f} to {t}: a {} record cannot become a {}",
                    f.kind().as_str(),
                    t.kind().as_str()
                )));
            }
            if !force {
                // A record moved to an address the configuration does not declare is destroyed
                // by the next apply: refuse a typo before it costs a server.
                let loaded =
                    prov_engine::workspace::load(&ws, &ctx.registry(&ws)?, &ctx.eval_options())
                        .map_err(|e| {
                            Failure(format!(
                            "cannot check {to} against the configuration (pass --force to move \
                             without checking): {e}"
                        ))
                        })?;
                if !loaded.model.resources.contains_key(&t) {
                    return Err(Failure(format!(
                        "{to} is not declared in the configuration: the next apply would destroy \
                         what {from} records; declare it first (or pass --force); nothing was moved"
                    )));
                }
            }
            let state = ctx.open_state(
                &ws,
                None,
                "state mv",
                lock.lock_timeout,
                Access::Write { create: false },
            )?;
            let wanted = [from.clone(), to.clone()].into_iter().collect();
            state.store.lock_resources(&wanted, lock.lock_timeout)?;
            let mut rec = state
                .store
                .record(&from)?
                .ok_or_else(|| Failure(format!("{from} is not in the state")))?;
            if state.store.record(&to)?.is_some() {
                return Err(Failure(format!(
                    "{to} is already in the state; nothing was moved"
                )));
            }
            rec.address = to.clone();
            state
                .store
                .commit(&[Change::Put(rec), Change::Delete(from.clone())])?;
            crate::outln!("Moved {from} to {to}.");
        }
        StateCommand::Pull { out, lock } => {
            let state = ctx.open_state(&ws, None, "state pull", lock.lock_timeout, Access::Read)?;
            let bytes = ctx
                .keys()?
                .seal(Content::StateDump, &state.store.dump()?.to_json());
            match out {
                Some(p) => write_private(&ctx.base.join(p), &bytes)?,
                None => crate::out::stdout_bytes(&bytes),
            }
        }
        StateCommand::Push { file, force, lock } => {
            let path = ctx.base.join(&file);
            let bytes = std::fs::read(&path)
                .map_err(|e| Failure(format!("reading {}: {e}", path.display())))?;
            let bytes = ctx
                .keys()?
                .open(Content::StateDump, &bytes)
                .map_err(|e| Failure(format!("cannot read {}: {e}", path.display())))?;
            let dump = StateDump::from_json(&bytes, &path.display().to_string())?;
            prov_engine::ops::check_dump(&dump)?;
            let state = ctx.open_state(
                &ws,
                None,
                "state push",
                lock.lock_timeout,
                Access::WholeState,
            )?;
            let serial = state.store.replace_all(&dump, force)?;
            crate::outln!(
                "Pushed {} records; the state is now at serial {serial}.",
                dump.resources.len()
            );
        }
        StateCommand::Unprotect { address, lock } => {
            parse(&address)?;
            let state = ctx.open_state(
                &ws,
                None,
                "state unprotect",
                lock.lock_timeout,
                Access::Write { create: false },
            )?;
            let wanted = [address.clone()].into_iter().collect();
            state.store.lock_resources(&wanted, lock.lock_timeout)?;
            let mut rec = state.store.record(&address)?.ok_or_else(|| {
                Failure(format!(
                    "{address} is not in the state; nothing was changed"
                ))
            })?;
            if !rec.protected {
                crate::outln!("{address} is not protected in the state; nothing was changed.");
                return Ok(0);
            }
            rec.protected = false;
            state.store.commit(&[Change::Put(rec)])?;
            crate::outln!(
                "Lifted the protection of {address}: plans may destroy or replace it unless its \
                 configuration sets lifecycle.prevent_destroy."
            );
        }
        StateCommand::History {
            address,
            json,
            lock,
        } => {
            parse(&address)?;
            let state =
                ctx.open_state(&ws, None, "state history", lock.lock_timeout, Access::Read)?;
            let h = state.store.history(&address)?;
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
        }
    }
    Ok(0)
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
