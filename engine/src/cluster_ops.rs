//! Cluster entry points beyond plan/apply: the checks run before planning (the implementation's
//! schema and the cluster's `resources` against its servers' plans), and the
//! `prov cluster status|restart` queries over recorded clusters.

use crate::error::{Diagnostic, EngineError};
use crate::model::{Address, Name, Resource};
use crate::records::cluster_request;
use crate::registry::Bound;
use crate::traits::{ClusterRequest, ClusterStatus, ComponentRequest, ComponentStatus, PlanInfo};
use crate::workspace::Loaded;
use prov_state::{ResourceRecord, StateRead};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// A quantity of CPU in cores ("2", "500m", "1.5").
pub fn parse_cpu(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    match s.strip_suffix('m') {
        Some(m) => m.trim().parse::<f64>().ok().map(|v| v / 1000.0),
        None => s.parse::<f64>().ok(),
    }
    .filter(|v| v.is_finite() && *v >= 0.0)
}

/// A quantity of bytes in MiB ("4Gi", "512Mi", "8G", "100M", "1Ti", a plain number of bytes).
pub fn parse_mib(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    const UNITS: &[(&str, f64)] = &[
        ("Ki", 1.0 / 1024.0),
        ("Mi", 1.0),
        ("Gi", 1024.0),
        ("Ti", 1024.0 * 1024.0),
        ("K", 1000.0 / 1048576.0),
        ("M", 1_000_000.0 / 1048576.0),
        ("G", 1e9 / 1048576.0),
        ("T", 1e12 / 1048576.0),
    ];
    for (u, f) in UNITS {
        if let Some(n) = s.strip_suffix(u) {
            return n
                .trim()
                .parse::<f64>()
                .ok()
                .map(|v| v * f)
                .filter(|v| v.is_finite() && *v >= 0.0);
        }
    }
    s.parse::<f64>()
        .ok()
        .map(|b| b / 1048576.0)
        .filter(|v| v.is_finite() && *v >= 0.0)
}

fn str_at<'a>(v: &'a Value, path: &str) -> &'a str {
    v.pointer(path).and_then(Value::as_str).unwrap_or_default()
}

/// Every declared cluster's checks before planning: its implementation's `validate` (the
/// extension's `schemas/cluster.ncl`, its components' implementations), `resources.min_nodes`
/// against its servers, `cpu_per_node`/`memory_per_node`/`storage_per_node` against each server's
/// plan (from its provider's get-plans), and each component's `resources.replicas` against the
/// servers. Errors name the cluster, the field and the server.
pub async fn check(loaded: &Loaded, validate: bool) -> Result<(), EngineError> {
    let model = &loaded.model;
    let mut errors = Vec::new();
    // Each provider's get-plans, asked once for all clusters.
    let mut plans: BTreeMap<String, Result<Vec<PlanInfo>, String>> = BTreeMap::new();
    for r in model.resources.values() {
        let Address::Cluster(name) = &r.addr else {
            continue;
        };
        let components: Vec<Value> = model
            .resources
            .values()
            .filter(|c| matches!(&c.addr, Address::Component(cl, _) if cl == name))
            .map(|c| (*c.config).clone())
            .collect();
        let servers: Vec<&Name> = r
            .depends_on
            .iter()
            .filter_map(|d| match d {
                Address::Server(n) => Some(n),
                _ => None,
            })
            .collect();
        let mut found = node_counts(r, &servers, &components);
        let wants = Wants::of(r);
        for s in &servers {
            let Some(srv) = model.resources.get(&Address::Server((*s).clone())) else {
                continue;
            };
            let plan_name = str_at(&srv.config, "/plan");
            if plan_name.is_empty() || plan_name.contains("${") {
                continue;
            }
            if !plans.contains_key(&srv.implementation) {
                let got = match loaded.bound.provider(&srv.implementation) {
                    Ok(p) => p.get_plans().await.map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                plans.insert(srv.implementation.clone(), got);
            }
            // A provider that cannot list its plans cannot be checked against (the plan
            // reports the provider's own errors elsewhere).
            if let Ok(list) = &plans[&srv.implementation] {
                if let Some(p) = list.iter().find(|p| p.name == plan_name) {
                    found.extend(wants.shortfalls(r, s, srv, p));
                }
            }
        }
        // References resolve at apply: the schema is checked then.
        if validate && !r.config.to_string().contains("${") {
            found.extend(implementation_errors(loaded, r, &components).await?);
        }
        errors.extend(found.into_iter().map(|(field, msg)| {
            Diagnostic::new(
                Some(r.addr.to_string()),
                r.declared_at.clone(),
                format!("{field}: {msg}"),
            )
        }));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Invalid(errors))
    }
}

/// A cluster's problem: the field and the message.
type Problem = (String, String);

/// `resources.min_nodes` against the servers, and each component's `resources.replicas` (a
/// component runs at most once per server).
fn node_counts(r: &Resource, servers: &[&Name], components: &[Value]) -> Vec<Problem> {
    let mut out = Vec::new();
    let name = r.addr.name();
    let min = r
        .config
        .pointer("/resources/min_nodes")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    if (servers.len() as f64) < min {
        let names = servers
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let listed = if names.is_empty() {
            String::new()
        } else {
            format!(" ({names})")
        };
        out.push((
            "resources.min_nodes".into(),
            format!(
                "cluster {name} needs at least {min} node(s) but runs on {} server(s){listed}",
                servers.len(),
            ),
        ));
    }
    for c in components {
        let replicas = c
            .pointer("/resources/replicas")
            .and_then(Value::as_f64)
            .unwrap_or(1.0);
        if replicas > servers.len() as f64 {
            out.push((
                format!("components.{}.resources.replicas", str_at(c, "/name")),
                format!(
                    "{replicas} replica(s), but cluster {name} runs on {} server(s) and a component runs at most once per server",
                    servers.len()
                ),
            ));
        }
    }
    out
}

/// What a cluster's configuration asks of each node. The seed's defaults (2 CPUs, 4Gi, 20Gi)
/// are placeholders: only what the configuration writes is a requirement.
struct Wants {
    cpu: Option<f64>,
    memory_mib: Option<f64>,
    storage_mib: Option<f64>,
}

impl Wants {
    fn of(r: &Resource) -> Wants {
        let written = |field: &str| {
            !r.defaults
                .iter()
                .any(|d| d == "resources" || d == &format!("resources.{field}"))
        };
        let want = |field: &str| {
            if written(field) {
                str_at(&r.config, &format!("/resources/{field}"))
            } else {
                ""
            }
        };
        Wants {
            cpu: parse_cpu(want("cpu_per_node")),
            memory_mib: parse_mib(want("memory_per_node")),
            storage_mib: parse_mib(want("storage_per_node")),
        }
    }

    /// Where server `s` (`srv`, whose plan is `p`) falls short of cluster `r`'s wants.
    fn shortfalls(&self, r: &Resource, s: &Name, srv: &Resource, p: &PlanInfo) -> Vec<Problem> {
        let mut out = Vec::new();
        let (plan_name, provider) = (&p.name, &srv.implementation);
        if let Some(c) = self.cpu.filter(|c| f64::from(p.cores) < *c) {
            out.push((
                "resources.cpu_per_node".into(),
                format!(
                    "{} needs {c} core(s) per node, but server.{s} has plan {plan_name} with {} core(s) ({provider})",
                    r.addr, p.cores
                ),
            ));
        }
        if self.memory_mib.is_some_and(|m| (p.memory_mb as f64) < m) {
            out.push((
                "resources.memory_per_node".into(),
                format!(
                    "{} needs {} per node, but server.{s} has plan {plan_name} with {} MiB ({provider})",
                    r.addr,
                    str_at(&r.config, "/resources/memory_per_node"),
                    p.memory_mb,
                ),
            ));
        }
        // Storage 0: the plan sets no quota (e.g. the host's disk), nothing to compare.
        if self
            .storage_mib
            .is_some_and(|d| p.storage_gb > 0 && (p.storage_gb as f64) * 1024.0 < d)
        {
            out.push((
                "resources.storage_per_node".into(),
                format!(
                    "{} needs {} per node, but server.{s} has plan {plan_name} with {} GB ({provider})",
                    r.addr,
                    str_at(&r.config, "/resources/storage_per_node"),
                    p.storage_gb,
                ),
            ));
        }
        out
    }
}

/// The cluster implementation's own `validate` of the cluster and its components.
async fn implementation_errors(
    loaded: &Loaded,
    r: &Resource,
    components: &[Value],
) -> Result<Vec<Problem>, EngineError> {
    let cl = loaded.bound.cluster(&r.implementation)?;
    let field = format!("implementation {}", r.implementation);
    Ok(match cl.validate(&r.config, components).await {
        Ok(v) => v.errors.into_iter().map(|e| (field.clone(), e)).collect(),
        Err(e) => vec![(field, e.to_string())],
    })
}

/// One recorded cluster as `prov cluster status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterReport {
    pub address: String,
    pub name: String,
    pub implementation: String,
    pub version: String,
    pub servers: Vec<String>,
    /// The implementation's `status` (with `list-components`' answer).
    pub status: Option<ClusterStatus>,
    /// `component-status` of each recorded component, with what the state recorded.
    pub components: Vec<ComponentReport>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    pub address: String,
    pub name: String,
    pub recorded_version: String,
    pub recorded_replicas: u64,
    /// `None`: not deployed (missing).
    pub status: Option<ComponentStatus>,
    pub error: Option<String>,
}

/// The recorded components of `cluster`, in address order.
fn components_of<'a>(
    records: &'a BTreeMap<Address, &'a ResourceRecord>,
    cluster: &Name,
) -> Vec<(&'a Address, &'a ResourceRecord)> {
    records
        .iter()
        .filter(|(a, _)| matches!(a, Address::Component(c, _) if c == cluster))
        .map(|(a, r)| (a, *r))
        .collect()
}

/// The request for `cluster` from the state, its recorded components included.
fn request(
    addr: &Address,
    rec: &ResourceRecord,
    records: &BTreeMap<Address, &ResourceRecord>,
    bound: &Bound,
) -> Result<ClusterRequest, String> {
    let mut req = cluster_request(addr, &rec.attributes, |a| records.get(a).copied(), bound)?;
    req.components = components_of(records, addr.name())
        .into_iter()
        .map(|(_, r)| r.attributes.clone())
        .collect();
    Ok(req)
}

fn recorded(
    records: &BTreeMap<Address, &ResourceRecord>,
    name: Option<&str>,
) -> Result<Vec<Address>, EngineError> {
    let all: Vec<Address> = records
        .keys()
        .filter(|a| matches!(a, Address::Cluster(_)))
        .cloned()
        .collect();
    match name {
        None => Ok(all),
        Some(n) => {
            let want = n.strip_prefix("cluster.").unwrap_or(n);
            let picked: Vec<Address> = all
                .iter()
                .filter(|a| a.name().as_str() == want)
                .cloned()
                .collect();
            if picked.is_empty() {
                return Err(EngineError::Invalid(vec![Diagnostic::new(
                    None,
                    None,
                    format!(
                        "no recorded cluster {want:?} (recorded: {})",
                        if all.is_empty() {
                            "none".to_string()
                        } else {
                            all.iter()
                                .map(|a| a.name().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    ),
                )]));
            }
            Ok(picked)
        }
    }
}

/// `prov cluster status [NAME]`: each recorded cluster's status, list-components and the
/// component-status of each recorded component. Read-only.
pub async fn status(
    bound: &Bound,
    state: &dyn StateRead,
    name: Option<&str>,
) -> Result<Vec<ClusterReport>, EngineError> {
    let snap = state.snapshot()?;
    let records = crate::records::parse_records(&snap)?;
    let mut out = Vec::new();
    for addr in recorded(&records, name)? {
        let rec = records[&addr];
        let mut report = ClusterReport {
            address: addr.to_string(),
            name: str_at(&rec.attributes, "/name").to_string(),
            implementation: rec.implementation.clone(),
            version: str_at(&rec.attributes, "/version").to_string(),
            servers: rec
                .attributes
                .get("servers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            status: None,
            components: Vec::new(),
            error: None,
        };
        let prepared = bound
            .cluster(&rec.implementation)
            .map_err(|e| e.to_string())
            .and_then(|cl| Ok((cl, request(&addr, rec, &records, bound)?)));
        let (cl, req) = match prepared {
            Ok(x) => x,
            Err(e) => {
                report.error = Some(e);
                out.push(report);
                continue;
            }
        };
        match cl.status(&req).await {
            Ok(s) => report.status = Some(s),
            Err(e) => report.error = Some(e.to_string()),
        }
        for (caddr, crec) in components_of(&records, addr.name()) {
            let creq = ComponentRequest {
                address: caddr.to_string(),
                cluster: req.clone(),
                name: caddr.name().to_string(),
                config: crec.attributes.clone(),
            };
            let (status, error) = match cl.component_status(&creq).await {
                Ok(s) => (s, None),
                Err(e) => (None, Some(e.to_string())),
            };
            report.components.push(ComponentReport {
                address: caddr.to_string(),
                name: caddr.name().to_string(),
                recorded_version: str_at(&crec.outputs, "/version").to_string(),
                recorded_replicas: crec
                    .attributes
                    .pointer("/resources/replicas")
                    .and_then(Value::as_u64)
                    .unwrap_or(1),
                status,
                error,
            });
        }
        out.push(report);
    }
    Ok(out)
}

/// `prov cluster restart NAME COMPONENT`: the implementation's restart-component (health gates
/// included), then its component-status. Changes nothing in the state.
pub async fn restart(
    bound: &Bound,
    state: &dyn StateRead,
    cluster: &str,
    component: &str,
) -> Result<Option<ComponentStatus>, EngineError> {
    let snap = state.snapshot()?;
    let records = crate::records::parse_records(&snap)?;
    let addr = recorded(&records, Some(cluster))?.remove(0);
    let rec = records[&addr];
    let comps = components_of(&records, addr.name());
    let Some((caddr, crec)) = comps.iter().find(|(a, _)| a.name().as_str() == component) else {
        return Err(EngineError::Invalid(vec![Diagnostic::new(
            Some(addr.to_string()),
            None,
            format!(
                "no recorded component {component:?} (recorded: {})",
                comps
                    .iter()
                    .map(|(a, _)| a.name().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )]));
    };
    let fail =
        |m: String| EngineError::Invalid(vec![Diagnostic::new(Some(caddr.to_string()), None, m)]);
    let cl = bound
        .cluster(&rec.implementation)
        .map_err(|e| fail(e.to_string()))?;
    let req = request(&addr, rec, &records, bound).map_err(fail)?;
    let creq = ComponentRequest {
        address: caddr.to_string(),
        cluster: req,
        name: component.to_string(),
        config: crec.attributes.clone(),
    };
    cl.restart_component(&creq)
        .await
        .map_err(|e| fail(e.to_string()))?;
    cl.component_status(&creq)
        .await
        .map_err(|e| fail(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cluster(config: Value, defaults: &[&str]) -> Resource {
        Resource {
            addr: "cluster.bk".parse().unwrap(),
            implementation: "k8s".into(),
            config: std::sync::Arc::new(config),
            depends_on: Vec::new(),
            lifecycle: Default::default(),
            declared_at: None,
            sensitive: Vec::new(),
            defaults: defaults.iter().map(|d| d.to_string()).collect(),
            references: Vec::new(),
        }
    }

    fn fields(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|(f, _)| f.as_str()).collect()
    }

    #[test]
    fn node_counts_hold_min_nodes_and_replicas_against_the_servers() {
        let (a, b) = (Name::new("a").unwrap(), Name::new("b").unwrap());
        let r = cluster(json!({"resources": {"min_nodes": 2}}), &[]);
        let comps = [json!({"name": "web", "resources": {"replicas": 2}})];
        assert!(node_counts(&r, &[&a, &b], &comps).is_empty());
        let short = node_counts(&r, &[&a], &comps);
        assert_eq!(
            fields(&short),
            ["resources.min_nodes", "components.web.resources.replicas"]
        );
        assert!(
            short[0].1.contains("runs on 1 server(s) (a)"),
            "{}",
            short[0].1
        );
    }

    #[test]
    fn only_what_the_configuration_writes_is_a_requirement_of_each_node() {
        let server = Resource {
            addr: "server.a".parse().unwrap(),
            implementation: "sim".into(),
            ..cluster(json!({}), &[])
        };
        let plan = PlanInfo {
            name: "small".into(),
            cores: 1,
            memory_mb: 2048,
            storage_gb: 0,
        };
        let a = Name::new("a").unwrap();
        let asks = json!({"resources": {"cpu_per_node": "2", "memory_per_node": "4Gi", "storage_per_node": "20Gi"}});
        let r = cluster(asks.clone(), &[]);
        // Storage 0 is no quota: nothing to compare.
        let found = Wants::of(&r).shortfalls(&r, &a, &server, &plan);
        assert_eq!(
            fields(&found),
            ["resources.cpu_per_node", "resources.memory_per_node"]
        );
        // The same values filled in by the schema's defaults ask for nothing.
        let r = cluster(asks, &["resources"]);
        assert!(Wants::of(&r).shortfalls(&r, &a, &server, &plan).is_empty());
        let r = cluster(json!({"resources": {"cpu_per_node": "500m"}}), &[]);
        assert!(Wants::of(&r).shortfalls(&r, &a, &server, &plan).is_empty());
    }
}
