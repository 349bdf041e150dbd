//! `prov server ...` and `prov provider ...`: provider operations on live servers and provider
//! queries, rendered as a table or one JSON document. The state is read, never written.

use super::{runtime, CmdResult, Failure};
use crate::cli::{LiveArgs, LockArgs, ProviderCommand, ServerCommand};
use crate::context::Context;
use crate::render::table::table;
use prov_engine::live::{self, PowerAction, ProviderAnswer, ProviderQuery};
use prov_engine::traits::{ServerInfo, ServerStatus};
use prov_engine::workspace::Loaded;
use serde_json::{json, Value};
use std::path::Path;

/// Loads the workspace and opens its state read-only (a missing state stays missing).
fn open(
    ctx: &Context,
    dir: Option<&Path>,
    lock: &LockArgs,
    operation: &str,
) -> Result<(Loaded, crate::context::OpenState), Failure> {
    let ws = ctx.workspace(dir)?;
    let (loaded, state) = ctx.load_with_state(
        &ws,
        operation,
        lock.lock_timeout,
        crate::context::Access::Read,
    )?;
    Ok((loaded, state))
}

fn status_str(s: ServerStatus) -> String {
    match serde_json::to_value(s) {
        Ok(Value::String(s)) => s,
        _ => format!("{s:?}").to_lowercase(),
    }
}

pub fn server(ctx: &Context, cmd: ServerCommand) -> CmdResult {
    match cmd {
        ServerCommand::List { live } => list(ctx, &live),
        ServerCommand::Info { name, live } => info(ctx, &name, &live),
        ServerCommand::Start { name, live } => power(ctx, &name, &live, PowerAction::Start),
        ServerCommand::Stop { name, live } => power(ctx, &name, &live, PowerAction::Stop),
        ServerCommand::Reboot { name, live } => power(ctx, &name, &live, PowerAction::Reboot),
        ServerCommand::Ssh {
            name,
            connect_timeout,
            print,
            dir,
            lock,
            command,
        } => ssh(
            ctx,
            &name,
            dir.as_deref(),
            &lock,
            connect_timeout,
            print,
            &command,
        ),
    }
}

fn list(ctx: &Context, a: &LiveArgs) -> CmdResult {
    let (loaded, state) = open(ctx, a.dir.as_deref(), &a.lock, "server list")?;
    let l = runtime()?.block_on(live::server_list(&loaded, &*state.store))?;
    if a.json {
        let servers: Vec<Value> = l
            .servers
            .iter()
            .map(|s| {
                json!({
                    "provider": s.provider,
                    "id": s.info.id,
                    "hostname": s.info.hostname,
                    "status": status_str(s.info.status),
                    "plan": s.info.plan,
                    "zone": s.info.zone,
                    "public_ip": s.info.public_ip,
                    "private_ip": s.info.private_ip,
                    "managed": s.managed(),
                    "address": s.address,
                    "workspace_tag": s.workspace_tag,
                })
            })
            .collect();
        super::json(&json!({
            "workspace": l.workspace,
            "providers": l.providers,
            "servers": servers,
            "missing": l.missing.iter().map(|m| json!({"address": m.address, "provider": m.provider, "id": m.id})).collect::<Vec<_>>(),
            "errors": l.errors.iter().map(|(p, m)| json!({"provider": p, "message": m})).collect::<Vec<_>>(),
        }))?;
    } else {
        if l.providers.is_empty() {
            crate::outln!("No providers are configured in this workspace.");
        } else if l.servers.is_empty() {
            crate::outln!("No servers at {}.", l.providers.join(", "));
        } else {
            let rows: Vec<Vec<String>> = l
                .servers
                .iter()
                .map(|s| {
                    let managed = match (&s.address, &s.workspace_tag) {
                        (Some(a), _) => a.clone(),
                        (None, Some(w)) if *w == l.workspace => {
                            "no (tagged for this workspace)".into()
                        }
                        (None, _) => "no".into(),
                    };
                    vec![
                        s.provider.clone(),
                        s.info.id.clone(),
                        s.info.hostname.clone(),
                        status_str(s.info.status),
                        s.info.plan.clone(),
                        s.info.zone.clone(),
                        s.info
                            .public_ip
                            .clone()
                            .or_else(|| s.info.private_ip.clone())
                            .unwrap_or_else(|| "-".into()),
                        managed,
                    ]
                })
                .collect();
            crate::out!(
                "{}",
                table(
                    &[
                        "PROVIDER", "ID", "HOSTNAME", "STATUS", "PLAN", "ZONE", "ADDRESS",
                        "MANAGED"
                    ],
                    &rows
                )
            );
        }
        for m in &l.missing {
            crate::outln!(
                "{}: recorded as {} id {} but the provider does not report it",
                m.address,
                m.provider,
                m.id
            );
        }
        for (p, m) in &l.errors {
            crate::errln!("error: provider {p}: {m}");
        }
    }
    Ok(if l.errors.is_empty() { 0 } else { 1 })
}

fn info_json(address: &str, provider: &str, i: &ServerInfo) -> Value {
    let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("address".into(), json!(address));
        m.insert("provider".into(), json!(provider));
    }
    v
}

fn info(ctx: &Context, name: &str, a: &LiveArgs) -> CmdResult {
    let (loaded, state) = open(ctx, a.dir.as_deref(), &a.lock, "server info")?;
    let (s, i) = runtime()?.block_on(live::server_info(&loaded, &*state.store, name))?;
    if a.json {
        super::json(&info_json(&s.address, &s.provider, &i))?;
        return Ok(0);
    }
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let mut rows = vec![
        vec!["address".into(), s.address.clone()],
        vec!["provider".into(), s.provider.clone()],
        vec!["id".into(), i.id.clone()],
        vec!["hostname".into(), i.hostname.clone()],
        vec!["status".into(), status_str(i.status)],
        vec!["plan".into(), i.plan.clone()],
        vec!["zone".into(), i.zone.clone()],
        vec!["os".into(), i.os.clone()],
        vec!["public_ip".into(), opt(&i.public_ip)],
        vec!["private_ip".into(), opt(&i.private_ip)],
    ];
    for (k, v) in &i.tags {
        rows.push(vec![format!("tags.{k}"), v.clone()]);
    }
    for (n, r) in i.firewall_rules.iter().enumerate() {
        let mut d = format!("{} {} {}", r.action, r.direction, r.protocol);
        if let Some(p) = &r.port {
            d.push_str(&format!(" port {p}"));
        }
        if let Some(x) = &r.source {
            d.push_str(&format!(" from {x}"));
        }
        if let Some(x) = &r.destination {
            d.push_str(&format!(" to {x}"));
        }
        rows.push(vec![format!("firewall_rules[{n}]"), d]);
    }
    crate::out!("{}", table(&["FIELD", "VALUE"], &rows));
    Ok(0)
}

fn power(ctx: &Context, name: &str, a: &LiveArgs, action: PowerAction) -> CmdResult {
    let (loaded, state) = open(
        ctx,
        a.dir.as_deref(),
        &a.lock,
        &format!("server {}", action.verb()),
    )?;
    let (s, status) =
        runtime()?.block_on(live::server_power(&loaded, &*state.store, name, action))?;
    if a.json {
        super::json(&json!({
            "address": s.address,
            "provider": s.provider,
            "id": s.id,
            "action": action.verb(),
            "status": status_str(status),
        }))?;
    } else {
        crate::outln!(
            "{} ({} {}): {} done, now {}",
            s.address,
            s.provider,
            s.id,
            action.verb(),
            status_str(status)
        );
    }
    Ok(0)
}

/// RFC 5737 / RFC 3849 documentation ranges: addresses no network routes (the sim provider
/// hands them out). ssh to them could only hang until its timeout.
fn documentation_address(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(a)) => {
            let o = a.octets();
            matches!(
                (o[0], o[1], o[2]),
                (192, 0, 2) | (198, 51, 100) | (203, 0, 113)
            )
        }
        Ok(std::net::IpAddr::V6(a)) => a.segments()[..2] == [0x2001, 0x0db8],
        Err(_) => false,
    }
}

fn ssh(
    ctx: &Context,
    name: &str,
    dir: Option<&Path>,
    lock: &LockArgs,
    connect_timeout: u32,
    print: bool,
    remote: &[String],
) -> CmdResult {
    let (loaded, state) = open(ctx, dir, lock, "server ssh")?;
    let (s, access) = runtime()?.block_on(live::ssh_access(&loaded, &*state.store, name))?;
    // The state lock is not held while the session runs.
    drop(state);
    if documentation_address(&access.host) {
        return Err(Failure(format!(
            "{} ({} {}): cannot ssh: its address {} is in a documentation range (RFC 5737/3849) that no network routes; {} servers are not reachable",
            s.address, s.provider, s.id, access.host, s.provider
        )));
    }
    let mut args: Vec<String> = vec![
        "-p".into(),
        access.port.to_string(),
        "-o".into(),
        format!("ConnectTimeout={connect_timeout}"),
    ];
    if let Some(k) = &access.key_path {
        args.push("-i".into());
        args.push(k.clone());
    }
    args.push(format!("{}@{}", access.user, access.host));
    args.extend(remote.iter().cloned());
    if print {
        crate::outln!("ssh {}", args.join(" "));
        return Ok(0);
    }
    let mut cmd = std::process::Command::new("ssh");
    cmd.args(&args);
    // Replace this process: the session owns the terminal and its exit code is ours.
    use std::os::unix::process::CommandExt;
    let e = cmd.exec();
    Err(Failure(format!(
        "{}: running the system ssh: {e} (is OpenSSH's client installed?)",
        s.address
    )))
}

pub fn provider(ctx: &Context, cmd: ProviderCommand) -> CmdResult {
    let (name, a, q) = match cmd {
        ProviderCommand::Info { provider, live } => (provider, live, ProviderQuery::Info),
        ProviderCommand::Plans { provider, live } => (provider, live, ProviderQuery::Plans),
        ProviderCommand::Zones { provider, live } => (provider, live, ProviderQuery::Zones),
        ProviderCommand::Pricing { provider, live } => (provider, live, ProviderQuery::Pricing),
        ProviderCommand::Test { provider, live } => (provider, live, ProviderQuery::Test),
    };
    let ws = ctx.workspace(a.dir.as_deref())?;
    // Provider queries need the settings, not the state.
    let loaded = ctx.load(&ws)?;
    let answer = runtime()?.block_on(live::provider_query(&loaded, &name, q))?;
    let mut code = 0;
    match answer {
        ProviderAnswer::Info(i) => {
            if a.json {
                super::json(&serde_json::to_value(&i)?)?;
            } else {
                let rows = vec![
                    vec!["name".into(), i.name],
                    vec!["version".into(), i.version],
                    vec!["interface".into(), i.interface],
                    vec!["operations".into(), i.supported_operations.join(", ")],
                    vec!["auth".into(), i.required_auth.join(", ")],
                    vec!["os".into(), i.supported_os.join(", ")],
                    vec!["regions".into(), i.regions.join(", ")],
                ];
                crate::out!("{}", table(&["FIELD", "VALUE"], &rows));
            }
        }
        ProviderAnswer::Plans(p) => {
            if a.json {
                super::json(&json!({"provider": name, "plans": p}))?;
            } else {
                let rows: Vec<Vec<String>> = p
                    .iter()
                    .map(|p| {
                        vec![
                            p.name.clone(),
                            p.cores.to_string(),
                            p.memory_mb.to_string(),
                            p.storage_gb.to_string(),
                        ]
                    })
                    .collect();
                crate::out!(
                    "{}",
                    table(&["PLAN", "CORES", "MEMORY_MB", "STORAGE_GB"], &rows)
                );
            }
        }
        ProviderAnswer::Zones(z) => {
            if a.json {
                super::json(&json!({"provider": name, "zones": z}))?;
            } else {
                let rows: Vec<Vec<String>> = z
                    .iter()
                    .map(|z| vec![z.name.clone(), z.description.clone()])
                    .collect();
                crate::out!("{}", table(&["ZONE", "DESCRIPTION"], &rows));
            }
        }
        ProviderAnswer::Pricing(p) => {
            if a.json {
                super::json(&json!({"provider": name, "pricing": p}))?;
            } else {
                let rows: Vec<Vec<String>> = p
                    .iter()
                    .map(|p| {
                        vec![
                            p.plan.clone(),
                            p.zone.clone().unwrap_or_else(|| "-".into()),
                            format!("{:.4}", p.hourly),
                            format!("{:.2}", p.monthly),
                            p.currency.clone(),
                        ]
                    })
                    .collect();
                crate::out!(
                    "{}",
                    table(&["PLAN", "ZONE", "HOURLY", "MONTHLY", "CURRENCY"], &rows)
                );
            }
        }
        ProviderAnswer::Test(t) => {
            if !t.success {
                code = 1;
            }
            if a.json {
                super::json(
                    &json!({"provider": name, "success": t.success, "message": t.message}),
                )?;
            } else if t.success {
                crate::outln!("{name}: connection ok: {}", t.message);
            } else {
                crate::outln!("{name}: connection FAILED: {}", t.message);
            }
        }
    }
    Ok(code)
}
