//! Taskserv entry points beyond plan/apply: the settings check run before planning, and the
//! `prov taskserv status|versions|check-updates|restart` queries over recorded taskservs.

use crate::error::{Diagnostic, EngineError};
use crate::model::Address;
use crate::records::server_target;
use crate::refs::find_refs;
use crate::registry::Bound;
use crate::traits::{ExtError, ServerTarget, TaskservRequest, TaskservStatus, UpdateCheck};
use crate::workspace::Loaded;
use prov_state::{ResourceRecord, StateRead};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// Runs every declared taskserv's `validate` (its settings schema) before anything is planned.
/// `${...}` references in settings are replaced by values of their type (the referenced
/// configuration value, or a stand-in such as an address for a server's `private_ip`), so the
/// schema is checked before anything runs; apply checks again with the resolved values.
/// Settings referring to what only an implementation reports (a type nobody can tell before
/// apply) are checked at apply alone.
pub async fn check_settings(loaded: &Loaded) -> Result<(), EngineError> {
    check_settings_except(loaded, &Default::default()).await
}

/// [`check_settings`], leaving out taskservs implemented by `skip` (an untrusted plan does not
/// evaluate the schemas and templates of the repository's own extension taskservs).
pub async fn check_settings_except(
    loaded: &Loaded,
    skip: &std::collections::BTreeSet<String>,
) -> Result<(), EngineError> {
    // Checks may be slow (a Nickel evaluation, a provider's latency): they run concurrently.
    let limit = Arc::new(tokio::sync::Semaphore::new(32));
    let mut checks = tokio::task::JoinSet::new();
    let addrs: std::collections::BTreeSet<Address> =
        loaded.model.resources.keys().cloned().collect();
    for r in loaded.model.resources.values() {
        let Address::Taskserv(server, name) = &r.addr else {
            continue;
        };
        if skip.contains(&r.implementation) {
            continue;
        }
        let mut refs = Vec::new();
        // Only settings have a schema; a version or health check given by reference is
        // checked at apply.
        if find_refs(&r.config, "", &mut refs).is_err()
            || refs
                .iter()
                .any(|(p, _)| p != "settings" && !p.starts_with("settings."))
        {
            continue;
        }
        let config = if refs.is_empty() {
            std::borrow::Cow::Borrowed(&*r.config)
        } else {
            let mut lookup = |rp: &crate::refs::RefPath| {
                let (target, attr) = crate::load::resolve_ref(rp, &addrs)?;
                crate::attrs::typed_placeholder(&loaded.model.resources[&target], &attr)
                    .map(crate::refs::Resolved::Known)
                    .ok_or_else(|| "type unknown before apply".to_string())
            };
            match crate::refs::substitute(&r.config, &mut lookup) {
                Ok(s) => std::borrow::Cow::Owned(s.value),
                Err(_) => continue,
            }
        };
        let saddr = Address::Server(server.clone());
        let Some(srv) = loaded.model.resources.get(&saddr) else {
            continue;
        };
        let provider = loaded.bound.provider(&srv.implementation)?;
        let t = loaded.bound.taskserv(&r.implementation)?;
        let server = ServerTarget {
            address: saddr.to_string(),
            provider_id: String::new(),
            hostname: srv
                .config
                .get("hostname")
                .and_then(Value::as_str)
                .unwrap_or(server.as_str())
                .to_string(),
            facts: (*srv.config).clone(),
            provider,
        };
        let req =
            TaskservRequest::from_attributes(r.addr.to_string(), name.to_string(), &config, server);
        let (addr, at, limit) = (r.addr.clone(), r.declared_at.clone(), limit.clone());
        checks.spawn(async move {
            let _slot = limit.acquire_owned().await.expect("semaphore open");
            (addr, at, t.validate(&req).await)
        });
    }
    let mut errors = Vec::new();
    while let Some(done) = checks.join_next().await {
        let (addr, at, v) = done.map_err(|e| EngineError::Internal(e.to_string()))?;
        let v = v?;
        let unmet = unmet_needs(loaded, &addr, &v.needs);
        let addr = addr.to_string();
        errors.extend(
            v.errors
                .into_iter()
                .chain(unmet)
                .map(|e| Diagnostic::new(Some(addr.clone()), at.clone(), e)),
        );
    }
    errors.sort_by(|a, b| a.address.cmp(&b.address));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// What `needs` (a taskserv's version descriptor's dependencies) asks of the taskservs declared
/// beside the one at `addr` that the configuration does not give: the needed taskserv is
/// declared on the same server, and a version pinned there is within the requirement. (An
/// unpinned one installs whatever its source offers: nothing to judge before apply.)
fn unmet_needs(
    loaded: &Loaded,
    addr: &Address,
    needs: &[crate::traits::VersionNeed],
) -> Vec<String> {
    let Address::Taskserv(server, _) = addr else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for n in needs {
        let req = match semver::VersionReq::parse(&n.version) {
            Ok(r) => r,
            Err(e) => {
                out.push(format!(
                    "{}: dependency {:?}: version {:?} is not a semver requirement: {e}",
                    n.declared_in, n.name, n.version
                ));
                continue;
            }
        };
        let sibling = crate::model::Name::new(&n.name).ok().and_then(|dn| {
            loaded
                .model
                .resources
                .get(&Address::Taskserv(server.clone(), dn))
        });
        let Some(sibling) = sibling else {
            out.push(format!(
                "needs taskserv {:?} {} on server {server} ({}), which is not declared there",
                n.name, n.version, n.declared_in
            ));
            continue;
        };
        let pinned = sibling
            .config
            .get("version")
            .and_then(Value::as_str)
            .filter(|v| *v != "latest");
        if let Some(pinned) = pinned {
            let ok =
                crate::extension::check::parse_version(pinned).is_some_and(|v| req.matches(&v));
            if !ok {
                out.push(format!(
                    "needs taskserv {:?} {} ({}), but taskserv.{server}.{} pins version {pinned:?}",
                    n.name, n.version, n.declared_in, n.name
                ));
            }
        }
    }
    out
}

/// One recorded taskserv and what its implementation answered.
#[derive(Debug, Clone, Serialize)]
pub struct TaskservReport<T: Serialize> {
    pub address: String,
    pub implementation: String,
    pub recorded_version: Option<String>,
    /// The answer, or the error (the other entries still run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The request for a recorded taskserv (settings as applied).
fn request(
    addr: &Address,
    rec: &ResourceRecord,
    all: &[(Address, ResourceRecord)],
    bound: &Bound,
) -> Result<TaskservRequest, String> {
    let server = addr.parent().ok_or("a taskserv has a server")?;
    let srec = all.iter().find(|(a, _)| *a == server).map(|(_, r)| r);
    let target = server_target(&server, srec, bound)?;
    Ok(TaskservRequest::from_attributes(
        addr.to_string(),
        addr.name().to_string(),
        &rec.attributes,
        target,
    ))
}

/// Which recorded taskservs a query covers: all, or those whose address is `filter` or whose
/// taskserv name or server name is `filter`.
fn selected(
    state: &dyn StateRead,
    filter: Option<&str>,
) -> Result<Vec<(Address, ResourceRecord)>, EngineError> {
    let snap = state.snapshot()?;
    let all: Vec<(Address, ResourceRecord)> = crate::records::parse_records(&snap)?
        .into_iter()
        .map(|(a, r)| (a, r.clone()))
        .collect();
    let picked: Vec<_> = all
        .iter()
        .filter(|(a, _)| matches!(a, Address::Taskserv(..)))
        .filter(|(a, _)| match (filter, a) {
            (None, _) => true,
            (Some(f), Address::Taskserv(s, n)) => {
                a.to_string() == f || n.as_str() == f || s.as_str() == f
            }
            _ => false,
        })
        .cloned()
        .collect();
    if let Some(f) = filter {
        if picked.is_empty() {
            return Err(EngineError::Invalid(vec![Diagnostic::new(
                None,
                None,
                format!("no recorded taskserv matches {f:?} (give an address taskserv.SERVER.NAME, a taskserv name or a server name)"),
            )]));
        }
    }
    // Servers are needed to build targets: keep them alongside.
    let mut out = picked;
    out.extend(
        all.into_iter()
            .filter(|(a, _)| matches!(a, Address::Server(_))),
    );
    Ok(out)
}

/// Runs `f` for each selected taskserv. What it answers is shown to the user: `redact` hides the
/// record's secrets in an answer (given its sensitive paths and secret values), and an error
/// message has them scrubbed.
async fn each<T, F, Fut>(
    bound: &Bound,
    state: &dyn StateRead,
    filter: Option<&str>,
    redact: fn(&mut T, &[String], &[String]),
    f: F,
) -> Result<Vec<TaskservReport<T>>, EngineError>
where
    T: Serialize,
    F: Fn(std::sync::Arc<dyn crate::traits::TaskServ>, TaskservRequest) -> Fut,
    Fut: std::future::Future<Output = Result<T, ExtError>>,
{
    let all = selected(state, filter)?;
    let mut out = Vec::new();
    for (addr, rec) in all
        .iter()
        .filter(|(a, _)| matches!(a, Address::Taskserv(..)))
    {
        let recorded_version = rec
            .outputs
            .get("version")
            .and_then(Value::as_str)
            .map(str::to_string);
        let r = match (
            request(addr, rec, &all, bound),
            bound.taskserv(&rec.implementation),
        ) {
            (Err(e), _) => Err(e),
            (_, Err(e)) => Err(e.to_string()),
            (Ok(req), Ok(t)) => f(t, req).await.map_err(|e| e.to_string()),
        };
        let secrets = crate::sensitive::record_secrets(rec);
        let (result, error) = match r {
            Ok(mut v) => {
                redact(&mut v, &rec.sensitive_paths, &secrets);
                (Some(v), None)
            }
            Err(e) => (None, Some(crate::sensitive::scrub_text(&e, &secrets))),
        };
        out.push(TaskservReport {
            address: addr.to_string(),
            implementation: rec.implementation.clone(),
            recorded_version,
            result,
            error,
        });
    }
    Ok(out)
}

/// `prov taskserv status`: each recorded taskserv's status (installed, running, version, health).
pub async fn status(
    bound: &Bound,
    state: &dyn StateRead,
    filter: Option<&str>,
) -> Result<Vec<TaskservReport<TaskservStatus>>, EngineError> {
    each(
        bound,
        state,
        filter,
        |s: &mut TaskservStatus, paths, secrets| {
            // Implementations report settings in `detail` under their own names (the sim
            // taskserv: `detail.settings`, as recorded): by path, then by value.
            crate::sensitive::redact_value(&mut s.detail, paths);
            crate::sensitive::scrub_value(&mut s.detail, secrets);
            for v in s.version.iter_mut() {
                *v = crate::sensitive::scrub_text(v, secrets);
            }
        },
        |t, req| async move { t.status(&req).await },
    )
    .await
}

/// `prov taskserv versions`: the versions each recorded taskserv's source offers.
pub async fn versions(
    bound: &Bound,
    state: &dyn StateRead,
    filter: Option<&str>,
) -> Result<Vec<TaskservReport<Vec<String>>>, EngineError> {
    each(
        bound,
        state,
        filter,
        |v: &mut Vec<String>, _, secrets| {
            for x in v.iter_mut() {
                *x = crate::sensitive::scrub_text(x, secrets);
            }
        },
        |t, req| async move { t.get_available_versions(&req).await },
    )
    .await
}

/// `prov taskserv check-updates`: installed version against the newest available.
pub async fn check_updates(
    bound: &Bound,
    state: &dyn StateRead,
    filter: Option<&str>,
) -> Result<Vec<TaskservReport<UpdateCheck>>, EngineError> {
    each(
        bound,
        state,
        filter,
        |_: &mut UpdateCheck, _, _| {},
        |t, req| async move { t.check_updates(&req).await },
    )
    .await
}

/// `prov taskserv restart`: restarts the matching taskservs (health gate included). Changes
/// nothing in the state.
pub async fn restart(
    bound: &Bound,
    state: &dyn StateRead,
    filter: Option<&str>,
) -> Result<Vec<TaskservReport<String>>, EngineError> {
    each(
        bound,
        state,
        filter,
        |_: &mut String, _, _| {},
        |t, req| async move { t.restart(&req).await.map(|()| "restarted".to_string()) },
    )
    .await
}
