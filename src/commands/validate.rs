//! `prov validate`: the configuration evaluates, is consistent, and providers accept their settings.

use super::{runtime, CmdResult};
use crate::context::Context;
use prov_engine::model::ResourceKind;
use prov_engine::ops;
use std::path::Path;

pub fn run(ctx: &Context, dir: Option<&Path>, json: bool) -> CmdResult {
    let ws = ctx.workspace(dir)?;
    let loaded = ctx.load(&ws)?;
    let warnings = runtime()?.block_on(ops::validate(&loaded))?;
    let count = |k: ResourceKind| {
        loaded
            .model
            .resources
            .values()
            .filter(|r| r.kind() == k)
            .count()
    };
    if json {
        let v = serde_json::json!({
            "valid": true,
            "resources": loaded.model.resources.len(),
            "warnings": warnings,
        });
        crate::outln!("{v}");
    } else {
        for w in &warnings {
            crate::errln!("warning: {w}");
        }
        crate::outln!(
            "The configuration is valid: {} servers, {} taskservs, {} clusters, {} components.",
            count(ResourceKind::Server),
            count(ResourceKind::Taskserv),
            count(ResourceKind::Cluster),
            count(ResourceKind::Component)
        );
    }
    Ok(0)
}
