//! `prov output`: the workspace outputs as resolved at the last apply.

use super::{CmdResult, Failure};
use crate::context::Context;
use crate::render::text::value;
use std::time::Duration;

pub fn run(ctx: &Context, name: Option<&str>, json: bool) -> CmdResult {
    let ws = ctx.workspace(None)?;
    let state = ctx.open_state(&ws, None, "output", Duration::ZERO, false)?;
    let outputs = state.store.snapshot()?.outputs;
    match name {
        Some(n) => {
            let v = outputs.get(n).ok_or_else(|| {
                Failure(format!(
                    "no output {n:?} in the state (outputs: {})",
                    outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            match (json, v) {
                (false, serde_json::Value::String(s)) => println!("{s}"),
                _ => println!("{v}"),
            }
        }
        None if json => println!("{}", serde_json::to_string_pretty(&outputs)?),
        None => {
            for (k, v) in &outputs {
                println!("{k} = {}", value(v));
            }
        }
    }
    Ok(0)
}
