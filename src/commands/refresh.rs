//! `prov refresh`: settle operations an interrupted apply left pending, by asking the implementations.

use super::{runtime, CmdResult};
use crate::cli::LockArgs;
use crate::context::Context;
use crate::render::{text, Paint};
use prov_engine::ops;
use std::path::Path;

pub fn run(ctx: &Context, dir: Option<&Path>, lock: &LockArgs) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let (loaded, state) = ctx.load_with_state(
        &ws,
        "refresh",
        lock.lock_timeout,
        crate::context::Access::Write { create: false },
    )?;
    let res = runtime()?.block_on(ops::refresh(&loaded.bound, &state.store, lock.lock_timeout))?;
    if res.is_empty() {
        crate::outln!("Nothing pending: every operation of earlier applies finished.");
    } else {
        crate::out!("{}", text::resolutions(&res, Paint { on: ctx.color }));
        crate::outln!("Recorded {} resolution(s).", res.len());
    }
    Ok(0)
}
