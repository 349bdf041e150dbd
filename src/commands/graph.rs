//! `prov graph`: the resource graph in Graphviz DOT.

use super::CmdResult;
use crate::context::Context;
use prov_engine::workspace;
use std::path::Path;

pub fn run(ctx: &Context, dir: Option<&Path>) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let loaded = workspace::load(&ws, &ctx.registry(&ws)?, &ctx.eval_options())?;
    crate::out!("{}", crate::render::dot::graph(&loaded.graph));
    Ok(0)
}
