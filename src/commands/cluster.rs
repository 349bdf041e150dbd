//! `prov cluster list|status|restart`: each calls one function (`prov_clusters::available` or
//! `prov_engine::cluster_ops`) and renders a table or JSON.

use super::{runtime, CmdResult};
use crate::cli::ClusterCommand;
use crate::context::Context;
use crate::render::table::table;
use prov_engine::cluster_ops::{self, ClusterReport};

/// The status text of one cluster: a header line and a table of its components.
fn render(r: &ClusterReport) -> String {
    let mut s = format!(
        "{} ({}) version {} on {}: {}\n",
        r.address,
        r.implementation,
        if r.version.is_empty() {
            "-"
        } else {
            &r.version
        },
        if r.servers.is_empty() {
            "no servers".to_string()
        } else {
            r.servers.join(", ")
        },
        match (&r.status, &r.error) {
            (_, Some(e)) => format!("error: {e}"),
            (Some(st), None) => st.status.clone(),
            (None, None) => "-".into(),
        }
    );
    let rows: Vec<Vec<String>> = r
        .components
        .iter()
        .map(|c| {
            let (kind, status, version, replicas) = match (&c.status, &c.error) {
                (_, Some(e)) => ("-".into(), format!("error: {e}"), "-".into(), "-".into()),
                (None, None) => ("-".into(), "missing".into(), "-".into(), "0".into()),
                (Some(st), None) => (
                    st.kind.clone(),
                    st.status.clone(),
                    if st.version.is_empty() {
                        "-".into()
                    } else {
                        st.version.clone()
                    },
                    st.replicas.to_string(),
                ),
            };
            vec![
                c.name.clone(),
                kind,
                status,
                version,
                if c.recorded_version.is_empty() {
                    "-".into()
                } else {
                    c.recorded_version.clone()
                },
                format!("{replicas}/{}", c.recorded_replicas),
            ]
        })
        .collect();
    if !rows.is_empty() {
        for line in table(
            &[
                "COMPONENT",
                "TYPE",
                "STATUS",
                "VERSION",
                "RECORDED",
                "REPLICAS",
            ],
            &rows,
        )
        .lines()
        {
            s.push_str("  ");
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

/// Exit 1 when a cluster or component is not running or a query failed.
fn healthy(r: &[ClusterReport]) -> bool {
    r.iter().all(|c| {
        c.error.is_none()
            && c.status.as_ref().is_some_and(|s| s.status == "running")
            && c.components.iter().all(|x| {
                x.error.is_none() && x.status.as_ref().is_some_and(|s| s.status == "running")
            })
    })
}

pub fn run(ctx: &Context, cmd: ClusterCommand) -> CmdResult {
    match cmd {
        ClusterCommand::List { json: j } => {
            let ws = ctx.workspace(None)?;
            let roots = prov_engine::extension::search_path(&ws.dir);
            let list = prov_clusters::available(&roots)?;
            if j {
                return super::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .into_iter()
                .map(|a| {
                    vec![
                        a.name,
                        a.version,
                        if a.components.is_empty() {
                            "-".into()
                        } else {
                            a.components.join(",")
                        },
                        a.source,
                        a.description,
                    ]
                })
                .collect();
            crate::out!(
                "{}",
                table(
                    &["NAME", "VERSION", "COMPONENTS", "SOURCE", "DESCRIPTION"],
                    &rows
                )
            );
            Ok(0)
        }
        ClusterCommand::Status {
            name,
            json: j,
            lock,
        } => {
            let rt = runtime()?;
            let r = super::query(ctx, &lock, "cluster status", |l, s| {
                rt.block_on(cluster_ops::status(&l.bound, s, name.as_deref()))
            })?;
            let code = u8::from(!healthy(&r));
            if j {
                super::json(&r)?;
                return Ok(code);
            }
            if r.is_empty() {
                crate::outln!("No clusters in the state.");
            }
            for c in &r {
                crate::out!("{}", render(c));
            }
            Ok(code)
        }
        ClusterCommand::Restart {
            name,
            component,
            json: j,
            lock,
        } => {
            let rt = runtime()?;
            let st = super::query(ctx, &lock, "cluster restart", |l, s| {
                rt.block_on(cluster_ops::restart(&l.bound, s, &name, &component))
            })?;
            if j {
                return super::json(&st);
            }
            match st {
                Some(s) => crate::outln!(
                    "cluster.{name}.{component}: restarted ({} replica(s) {})",
                    s.replicas,
                    s.status
                ),
                None => crate::outln!("cluster.{name}.{component}: restarted (status: missing)"),
            }
            Ok(0)
        }
    }
}
