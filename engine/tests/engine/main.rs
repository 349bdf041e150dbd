//! The engine's integration tests, one binary: configuration evaluation, the apply walker, the planner, plan files, hand edits of records and many writers on one state, against `prov_engine::testing`'s fakes.

mod config_eval;
mod load_state;
mod plan_file;
mod planner;
mod state_edit;
mod teams;
mod walker;

use prov_engine::testing::World;

/// A world whose workspace holds `main_ncl`.
pub fn world(main_ncl: &str) -> World {
    let w = World::new();
    w.write(main_ncl);
    w
}

/// `n` fake servers, each `sK`, with server i depending on i-1 when `chain`.
pub fn servers(n: usize, chain: bool) -> String {
    let mut s = String::from("{\n  providers = { fake = { defaults = { plan = \"small\", zone = \"a\" } } },\n  servers = {\n");
    for i in 0..n {
        let dep = if chain && i > 0 {
            format!(
                ", tags = {{ prev = \"${{server.s{}.private_ip}}\" }}",
                i - 1
            )
        } else {
            String::new()
        };
        s.push_str(&format!("    s{i} = {{ provider = \"fake\"{dep} }},\n"));
    }
    s.push_str("  },\n}\n");
    s
}
