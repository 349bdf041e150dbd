//! `prov import ADDR ID`: adopt a server that exists at its provider into the state.

use super::{runtime, CmdResult, Failure};
use crate::cli::LockArgs;
use crate::context::Context;
use prov_engine::model::Address;
use prov_engine::ops;
use std::path::Path;

pub fn run(
    ctx: &Context,
    address: &str,
    id: &str,
    dir: Option<&Path>,
    force: bool,
    lock: &LockArgs,
) -> CmdResult {
    let addr: Address = address.parse().map_err(Failure)?;
    let ws = ctx.workspace(dir)?;
    let (loaded, state) = ctx.load_with_state(
        &ws,
        "import",
        lock.lock_timeout,
        crate::context::Access::Write { create: true },
    )?;
    let rec = runtime()?.block_on(ops::import(
        &loaded,
        &state.store,
        &addr,
        id,
        force,
        lock.lock_timeout,
    ))?;
    crate::outln!(
        "Imported {} as {addr}. Run `prov plan` to see how it differs from the configuration.",
        rec.provider_id.as_deref().unwrap_or(id)
    );
    Ok(0)
}
