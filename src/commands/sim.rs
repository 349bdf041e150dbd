//! `prov sim`: look at and edit the `sim` provider's simulated world out of band (tests and drift demos).

use super::CmdResult;
use crate::cli::SimCommand;
use crate::context::Context;
use prov_sim::world::{World, TAG_WORKSPACE};
use std::collections::BTreeMap;

pub fn run(ctx: &Context, cmd: SimCommand) -> CmdResult {
    let ws = ctx.workspace(None)?;
    let world = World::open(&ws.dir)?;
    match cmd {
        SimCommand::List => {
            for s in world.list_servers()? {
                crate::outln!(
                    "{}\t{}\t{:?}\t{}\t{}\t{}",
                    s.id,
                    s.hostname,
                    s.status,
                    s.plan,
                    s.zone,
                    s.public_ip.as_deref().unwrap_or("-")
                );
            }
        }
        SimCommand::Delete { server } => {
            let s = world.delete_server_out_of_band(&server)?;
            crate::outln!("deleted {} ({}) outside prov", s.hostname, s.id);
        }
        SimCommand::Set { server, key, value } => {
            let v = serde_json::from_str(&value).unwrap_or(serde_json::Value::String(value));
            let s = world.set_server_attribute(&server, &key, v)?;
            crate::outln!("set {key} on {} ({}) outside prov", s.hostname, s.id);
        }
        SimCommand::AddUnmanaged { hostname } => {
            // Tagged as this workspace's (its state's identity), as if a create had leaked it.
            let state = ctx.open_state(
                &ws,
                None,
                "sim add-unmanaged",
                Default::default(),
                crate::context::Access::Read,
            )?;
            let name = prov_engine::ownership::workspace_id(&state.store.meta()?);
            drop(state);
            if name.is_empty() {
                return Err(super::Failure(
                    "this workspace has no state yet: apply first".into(),
                ));
            }
            let s = world.add_unmanaged_server(
                &hostname,
                BTreeMap::from([(TAG_WORKSPACE.to_string(), name)]),
            )?;
            crate::outln!("added unmanaged server {} ({})", s.hostname, s.id);
        }
        SimCommand::TaskservVersion {
            server,
            name,
            new_version,
        } => {
            world.set_taskserv_version(&server, &name, &new_version)?;
            crate::outln!("set taskserv {name} on {server} to version {new_version} outside prov");
        }
        SimCommand::StopTaskserv { server, name } => {
            world.stop_taskserv(&server, &name)?;
            crate::outln!("stopped taskserv {name} on {server} outside prov");
        }
    }
    Ok(0)
}
