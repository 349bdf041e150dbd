//! `prov output`: the workspace outputs as resolved at the last apply (a list redacts sensitive ones; `--json` is Terraform's `output -json` shape).

use super::{CmdResult, Failure};
use crate::context::Context;
use crate::render::text::output_value;
use prov_engine::ops;
use prov_engine::sensitive::REDACTED;
use std::time::Duration;

pub fn run(ctx: &Context, name: Option<&str>, json: bool) -> CmdResult {
    let ws = ctx.workspace(None)?;
    let state = ctx.open_state(
        &ws,
        None,
        "output",
        Duration::ZERO,
        crate::context::Access::Read,
    )?;
    let ops::Outputs {
        values: mut outputs,
        sensitive,
        unknown_because,
    } = ops::outputs(&ws, &ctx.registry(&ws)?, &ctx.eval_options(), &*state.store)?;
    // A list never shows a secret; naming an output is asking for its value (as scripts do).
    if name.is_none() {
        if let Some(why) = unknown_because.filter(|_| !outputs.is_empty()) {
            crate::errln!(
                "warning: the configuration does not evaluate, so which outputs are sensitive is unknown: every one is shown as {REDACTED}; name one to print its value.\n{why}"
            );
        }
    }
    match name {
        Some(n) => {
            let v = outputs.get(n).ok_or_else(|| {
                Failure(format!(
                    "no output {n:?} in the state (outputs: {})",
                    outputs.keys().cloned().collect::<Vec<_>>().join(", ")
                ))
            })?;
            match (json, v) {
                (false, serde_json::Value::String(s)) => crate::outln!("{s}"),
                _ => crate::outln!("{v}"),
            }
        }
        // Terraform's `output -json` shape: {name: {sensitive, type, value}}.
        None if json => {
            for (k, v) in outputs.iter_mut() {
                if sensitive.contains(k) {
                    *v = serde_json::Value::String(REDACTED.into());
                }
            }
            let sensitive: Vec<String> = sensitive.into_iter().collect();
            crate::outln!(
                "{}",
                serde_json::to_string_pretty(&crate::render::tfjson::outputs(
                    &outputs, &sensitive
                ))?
            )
        }
        None => {
            for (k, v) in &outputs {
                crate::outln!("{k} = {}", output_value(v, sensitive.contains(k)));
            }
        }
    }
    Ok(0)
}
