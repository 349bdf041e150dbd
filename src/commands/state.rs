//! `prov state list|show`: read the recorded resources.

use super::{CmdResult, Failure};
use crate::cli::StateCommand;
use crate::context::Context;
use crate::render::text::value;
use prov_state::{ResourceRecord, StateRead};

pub fn print_record_attrs(r: &ResourceRecord) {
    for (title, v) in [("attributes", &r.attributes), ("outputs", &r.outputs)] {
        if let Some(o) = v.as_object().filter(|o| !o.is_empty()) {
            println!("  {title}:");
            let w = o.keys().map(String::len).max().unwrap_or(0);
            for (k, x) in o {
                println!("    {k:<w$} = {}", value(x));
            }
        }
    }
    if !r.dependencies.is_empty() {
        println!("  depends on: {}", r.dependencies.join(", "));
    }
}

pub fn run(ctx: &Context, cmd: StateCommand) -> CmdResult {
    let ws = ctx.workspace(None)?;
    match cmd {
        StateCommand::List { lock } => {
            let store = ctx.open_state(&ws, "state list", lock.lock_timeout, false)?;
            for a in store.snapshot()?.resources.keys() {
                println!("{a}");
            }
        }
        StateCommand::Show {
            address,
            json,
            lock,
        } => {
            address
                .parse::<prov_engine::model::Address>()
                .map_err(Failure)?;
            let store = ctx.open_state(&ws, "state show", lock.lock_timeout, false)?;
            let r = store.record(&address)?.ok_or_else(|| {
                Failure(format!(
                    "{address} is not in the state (see `prov state list`)"
                ))
            })?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "{} ({}{})",
                    r.address,
                    r.implementation,
                    r.provider_id
                        .as_ref()
                        .map(|i| format!(", id {i}"))
                        .unwrap_or_default()
                );
                print_record_attrs(&r);
            }
        }
    }
    Ok(0)
}
