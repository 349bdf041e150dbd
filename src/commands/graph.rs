//! `prov graph`: the resource graph in Graphviz DOT.

use super::CmdResult;
use crate::context::Context;
use std::path::Path;

pub fn run(ctx: &Context, dir: Option<&Path>) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let loaded = ctx.load(&ws)?;
    crate::out!("{}", crate::render::dot::graph(&loaded.graph));
    Ok(0)
}
