//! Operations on live objects (`prov server ...`, `prov provider ...`): find a server by name in the
//! state, call one provider operation on it, and return typed answers. Never writes the state.

use crate::error::{Diagnostic, EngineError};
use crate::model::Address;
use crate::traits::{
    ConnectionTest, ExtError, PlanInfo, Pricing, ProviderInfo, ServerInfo, ServerStatus, SshAccess,
    Zone,
};
use crate::workspace::Loaded;
use prov_state::{Snapshot, StateRead};
use std::collections::BTreeSet;

/// A server prov manages, as recorded in the state.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerRef {
    /// `server.NAME`.
    pub address: String,
    /// The provider implementation (`sim`, `aws`, ...).
    pub provider: String,
    /// The server's id at its provider.
    pub id: String,
}

fn invalid(address: Option<String>, message: String) -> EngineError {
    EngineError::Invalid(vec![Diagnostic::new(address, None, message)])
}

/// Every server address in the state and the configuration, for "known servers" hints.
fn known_servers(loaded: &Loaded, snap: &Snapshot) -> Vec<String> {
    let mut known: BTreeSet<String> = snap
        .resources
        .values()
        .filter(|r| r.kind == "server")
        .map(|r| r.address.clone())
        .collect();
    known.extend(
        loaded
            .model
            .resources
            .keys()
            .filter(|a| matches!(a, Address::Server(_)))
            .map(|a| a.to_string()),
    );
    known.into_iter().collect()
}

/// Finds a managed server by name (`web-01`) or address (`server.web-01`) in the state.
/// A name that is declared but not created yet, or unknown, is an error listing the known servers.
pub fn find_server(loaded: &Loaded, snap: &Snapshot, name: &str) -> Result<ServerRef, EngineError> {
    let address = if name.contains('.') {
        name.to_string()
    } else {
        format!("server.{name}")
    };
    let addr: Address = address.parse().map_err(|e: String| invalid(None, e))?;
    if !matches!(addr, Address::Server(_)) {
        return Err(invalid(
            None,
            format!("{name:?} is not a server: expected NAME or server.NAME"),
        ));
    }
    if let Some(r) = snap.resources.get(&address) {
        if let Some(id) = &r.provider_id {
            return Ok(ServerRef {
                address,
                provider: r.implementation.clone(),
                id: id.clone(),
            });
        }
    }
    let known = known_servers(loaded, snap);
    let hint = if known.is_empty() {
        "no servers are declared or recorded in this workspace".to_string()
    } else {
        format!("known servers: {}", known.join(", "))
    };
    if loaded.model.resources.contains_key(&addr) {
        return Err(invalid(
            Some(address),
            format!("is declared but not created yet (run `prov apply`); {hint}"),
        ));
    }
    Err(invalid(None, format!("unknown server {name:?}: {hint}")))
}

/// One server as its provider reports it, and whether this workspace manages it.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedServer {
    pub provider: String,
    pub info: ServerInfo,
    /// The state's address for this server when the state records it (managed).
    pub address: Option<String>,
    /// The `prov:workspace` tag, when the server carries one.
    pub workspace_tag: Option<String>,
}

impl ListedServer {
    pub fn managed(&self) -> bool {
        self.address.is_some()
    }
}

/// `prov server list`'s answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServerList {
    /// This workspace's identity (what its ownership tags say; see `ownership`).
    pub workspace: String,
    /// Providers asked, in name order.
    pub providers: Vec<String>,
    pub servers: Vec<ListedServer>,
    /// Providers whose list-servers failed: (provider, message).
    pub errors: Vec<(String, String)>,
    /// Recorded servers their provider did not report (deleted outside prov).
    pub missing: Vec<ServerRef>,
}

/// Providers configured in the workspace: used by declared or recorded servers, or given settings.
fn workspace_providers(loaded: &Loaded, snap: &Snapshot) -> BTreeSet<String> {
    let registry = loaded.bound.registry();
    crate::drift::providers_in_use(
        snap,
        loaded
            .model
            .resources
            .values()
            .filter(|r| matches!(r.addr, Address::Server(_)))
            .map(|r| r.implementation.clone())
            .chain(
                loaded
                    .model
                    .providers
                    .keys()
                    .filter(|k| registry.has_provider(k))
                    .cloned(),
            ),
    )
}

/// `prov server list`: list-servers of every provider configured in the workspace, each server
/// marked managed (recorded in the state) or not.
pub async fn server_list(
    loaded: &Loaded,
    state: &dyn StateRead,
) -> Result<ServerList, EngineError> {
    let snap = state.snapshot()?;
    let providers = workspace_providers(loaded, &snap);
    let mut out = ServerList {
        workspace: crate::ownership::Identity::of(&snap.meta, &loaded.bound).id,
        providers: providers.iter().cloned().collect(),
        ..Default::default()
    };
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    for name in &providers {
        let listed = match loaded.bound.provider(name) {
            Ok(p) => p.list_servers().await,
            Err(e) => Err(e),
        };
        let list = match listed {
            Ok(l) => l,
            Err(e) => {
                out.errors.push((name.clone(), e.to_string()));
                continue;
            }
        };
        for info in list {
            let address = snap
                .resources
                .values()
                .find(|r| {
                    r.kind == "server"
                        && &r.implementation == name
                        && r.provider_id.as_deref() == Some(info.id.as_str())
                })
                .map(|r| r.address.clone());
            seen.insert((name.clone(), info.id.clone()));
            out.servers.push(ListedServer {
                provider: name.clone(),
                workspace_tag: info
                    .tags
                    .get(crate::traits::Ownership::TAG_WORKSPACE)
                    .cloned(),
                address,
                info,
            });
        }
    }
    let failed: BTreeSet<&String> = out.errors.iter().map(|(p, _)| p).collect();
    for r in snap.resources.values().filter(|r| r.kind == "server") {
        if let Some(id) = &r.provider_id {
            if !failed.contains(&r.implementation)
                && !seen.contains(&(r.implementation.clone(), id.clone()))
            {
                out.missing.push(ServerRef {
                    address: r.address.clone(),
                    provider: r.implementation.clone(),
                    id: id.clone(),
                });
            }
        }
    }
    out.servers.sort_by(|a, b| {
        (
            &a.address.is_none(),
            &a.address,
            &a.provider,
            &a.info.hostname,
        )
            .cmp(&(
                &b.address.is_none(),
                &b.address,
                &b.provider,
                &b.info.hostname,
            ))
    });
    Ok(out)
}

fn gone(s: &ServerRef) -> EngineError {
    invalid(
        Some(s.address.clone()),
        format!(
            "provider {:?} has no server with id {:?} (deleted outside prov? `prov plan` will recreate it)",
            s.provider, s.id
        ),
    )
}

/// `prov server info NAME`: get-server-info of a managed server, its secrets redacted.
pub async fn server_info(
    loaded: &Loaded,
    state: &dyn StateRead,
    name: &str,
) -> Result<(ServerRef, ServerInfo), EngineError> {
    let snap = state.snapshot()?;
    let s = find_server(loaded, &snap, name)?;
    let p = loaded.bound.provider(&s.provider)?;
    match p.get_server_info(&s.id).await? {
        Some(info) => {
            // Shown to the user: what the record and the configuration hold secret is redacted.
            let rec = snap.resources.get(&s.address);
            let paths = crate::ops::sensitive_paths(&s.address, rec, &loaded.model);
            let mut secrets = Vec::new();
            if let Some(r) = rec {
                crate::sensitive::secret_values(&r.config, &paths, &mut secrets);
                crate::sensitive::secret_values(&r.attributes, &paths, &mut secrets);
                crate::sensitive::secret_values(&r.outputs, &paths, &mut secrets);
            }
            if let Some(r) = s
                .address
                .parse::<Address>()
                .ok()
                .and_then(|a| loaded.model.resources.get(&a))
            {
                crate::sensitive::secret_values(&r.config, &paths, &mut secrets);
            }
            let info = crate::sensitive::redact_server_info(&info, &paths, &secrets);
            Ok((s, info))
        }
        None => Err(gone(&s)),
    }
}

/// A power operation on a live server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PowerAction {
    Start,
    Stop,
    Reboot,
}

impl PowerAction {
    pub fn verb(self) -> &'static str {
        match self {
            PowerAction::Start => "start",
            PowerAction::Stop => "stop",
            PowerAction::Reboot => "reboot",
        }
    }
}

/// `prov server start|stop|reboot NAME`: the provider operation on a managed server, then its
/// status as reported afterwards. The state is not changed: the next plan or drift sees the
/// server as it is.
pub async fn server_power(
    loaded: &Loaded,
    state: &dyn StateRead,
    name: &str,
    action: PowerAction,
) -> Result<(ServerRef, ServerStatus), EngineError> {
    let snap = state.snapshot()?;
    let s = find_server(loaded, &snap, name)?;
    let p = loaded.bound.provider(&s.provider)?;
    let with_address = |e: ExtError| -> EngineError {
        let mut e = e;
        if e.target.as_deref() == Some(s.id.as_str()) {
            e.target = Some(format!("{} ({})", s.address, s.id));
        }
        e.into()
    };
    match action {
        PowerAction::Start => p.start_server(&s.id).await,
        PowerAction::Stop => p.stop_server(&s.id).await,
        PowerAction::Reboot => p.reboot_server(&s.id).await,
    }
    .map_err(|e| {
        if e.kind == crate::traits::ErrorKind::NotFound {
            gone(&s)
        } else {
            with_address(e)
        }
    })?;
    let status = match p.get_server_info(&s.id).await.map_err(with_address)? {
        Some(info) => info.status,
        None => return Err(gone(&s)),
    };
    Ok((s, status))
}

/// `prov server ssh NAME`: how to reach a managed server (get-ssh-access).
pub async fn ssh_access(
    loaded: &Loaded,
    state: &dyn StateRead,
    name: &str,
) -> Result<(ServerRef, SshAccess), EngineError> {
    let snap = state.snapshot()?;
    let s = find_server(loaded, &snap, name)?;
    let p = loaded.bound.provider(&s.provider)?;
    let access = p.get_ssh_access(&s.id).await.map_err(|e| {
        if e.kind == crate::traits::ErrorKind::NotFound {
            gone(&s)
        } else {
            e.into()
        }
    })?;
    Ok((s, access))
}

/// A read-only question to a provider (`prov provider info|plans|zones|pricing|test`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderQuery {
    Info,
    Plans,
    Zones,
    Pricing,
    Test,
}

/// The provider's answer to a [`ProviderQuery`].
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderAnswer {
    Info(ProviderInfo),
    Plans(Vec<PlanInfo>),
    Zones(Vec<Zone>),
    Pricing(Vec<Pricing>),
    Test(ConnectionTest),
}

/// Asks the provider `name`, built with the workspace's `providers.NAME` settings.
pub async fn provider_query(
    loaded: &Loaded,
    name: &str,
    q: ProviderQuery,
) -> Result<ProviderAnswer, EngineError> {
    let p = loaded.bound.provider(name)?;
    Ok(match q {
        ProviderQuery::Info => ProviderAnswer::Info(p.info().await?),
        ProviderQuery::Plans => ProviderAnswer::Plans(p.get_plans().await?),
        ProviderQuery::Zones => ProviderAnswer::Zones(p.get_zones().await?),
        ProviderQuery::Pricing => ProviderAnswer::Pricing(p.get_pricing().await?),
        ProviderQuery::Test => ProviderAnswer::Test(p.test_connection().await?),
    })
}
