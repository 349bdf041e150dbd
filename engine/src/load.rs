//! Turns the evaluated configuration (JSON) into the resource model, resolving implementations and every dependency.

use crate::error::Diagnostic;
use crate::model::{Address, Lifecycle, Name, Resource};
use crate::refs::{find_refs, RefPath};
use crate::registry::Bound;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The whole desired world of one workspace.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub resources: BTreeMap<Address, Resource>,
    /// `outputs = { ... }` as written (references unresolved).
    pub outputs: Map<String, Value>,
    /// `providers = { ... }` settings.
    pub providers: Map<String, Value>,
    /// Outputs that show a sensitive value (through a reference): redacted wherever shown.
    pub sensitive_outputs: BTreeSet<String>,
}

struct Ctx<'a> {
    positions: &'a BTreeMap<String, String>,
    defaults: &'a BTreeSet<String>,
    bound: &'a Bound,
    errors: Vec<Diagnostic>,
    resources: BTreeMap<Address, Resource>,
    /// address → ( `depends_on` strings as written, where they came from )
    explicit: Vec<(Address, String)>,
}

impl Ctx<'_> {
    fn at(&self, key: &str) -> Option<String> {
        self.positions.get(key).cloned()
    }
    /// The attribute paths under `key` the schema's defaults filled in.
    fn defaults(&self, key: &str) -> Vec<String> {
        let prefix = format!("{key}.");
        self.defaults
            .range(prefix.clone()..)
            .take_while(|p| p.starts_with(&prefix))
            .map(|p| p[prefix.len()..].to_string())
            .collect()
    }
    fn err(&mut self, addr: Option<&Address>, key: &str, msg: impl Into<String>) {
        let at = self.at(key);
        self.errors
            .push(Diagnostic::new(addr.map(|a| a.to_string()), at, msg));
    }
    fn insert(&mut self, r: Resource) {
        if let Some(prev) = self.resources.get(&r.addr) {
            let msg = format!(
                "duplicate address: {} is declared twice (first {}, again {})",
                r.addr,
                prev.declared_at.as_deref().unwrap_or("earlier"),
                r.declared_at.as_deref().unwrap_or("later")
            );
            self.errors.push(Diagnostic::new(
                Some(r.addr.to_string()),
                r.declared_at.clone(),
                msg,
            ));
            return;
        }
        self.resources.insert(r.addr.clone(), r);
    }
}

fn obj(v: &Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

/// The object at `v`, borrowed (empty when absent or not an object): walking the configuration
/// copies nothing but what the model keeps.
fn entries(v: Option<&Value>) -> impl Iterator<Item = (&String, &Value)> {
    v.and_then(Value::as_object).into_iter().flatten()
}

fn str_field<'v>(v: &'v Value, k: &str) -> Option<&'v str> {
    v.get(k).and_then(Value::as_str)
}

fn lifecycle(v: &Value) -> Lifecycle {
    v.get("lifecycle")
        .and_then(|l| Lifecycle::deserialize(l).ok())
        .unwrap_or_default()
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Builds the model. All problems are collected, not just the first.
pub fn build_model(
    config: &Value,
    positions: &BTreeMap<String, String>,
    defaults: &BTreeSet<String>,
    bound: &Bound,
) -> Result<Model, Vec<Diagnostic>> {
    build_model_from(&mut config.clone(), positions, defaults, bound)
}

/// [`build_model`] for a caller done with the configuration's servers: their attributes move
/// into the model instead of being copied, and `config.servers` is left null.
pub fn build_model_from(
    config: &mut Value,
    positions: &BTreeMap<String, String>,
    defaults: &BTreeSet<String>,
    bound: &Bound,
) -> Result<Model, Vec<Diagnostic>> {
    let mut servers = config.get_mut("servers").map(Value::take);
    let config = &*config;
    let mut cx = Ctx {
        positions,
        defaults,
        bound,
        errors: Vec::new(),
        resources: BTreeMap::new(),
        explicit: Vec::new(),
    };
    let providers = obj(config.get("providers").unwrap_or(&Value::Null));
    let mut server_provider: BTreeMap<Name, String> = BTreeMap::new();
    let servers = servers.as_mut().and_then(Value::as_object_mut);
    for (sname, srv) in servers.into_iter().flatten() {
        let key = format!("servers.{sname}");
        let name = match Name::new(sname) {
            Ok(n) => n,
            Err(e) => {
                cx.err(None, &key, format!("servers.{sname}: {e}"));
                continue;
            }
        };
        if let Some(srv_addr) = load_server(&mut cx, &name, srv, &providers) {
            server_provider.insert(name.clone(), srv_addr);
        }
    }
    for (cname, cl) in entries(config.get("clusters")) {
        let key = format!("clusters.{cname}");
        match Name::new(cname) {
            Ok(n) => load_cluster(&mut cx, &n, cl, &server_provider),
            Err(e) => cx.err(None, &key, format!("clusters.{cname}: {e}")),
        }
    }
    // In this order, for the order of the diagnostics.
    cx.check_hostnames();
    cx.resolve_depends_on();
    let addrs: BTreeSet<Address> = cx.resources.keys().cloned().collect();
    cx.resolve_references(&addrs);
    let outputs = obj(config.get("outputs").unwrap_or(&Value::Null));
    let sensitive_outputs = cx.check_outputs(&outputs, &addrs);
    if cx.errors.is_empty() {
        Ok(Model {
            resources: cx.resources,
            outputs,
            providers,
            sensitive_outputs,
        })
    } else {
        Err(cx.errors)
    }
}

impl Ctx<'_> {
    /// Hostnames are the servers' identity at the provider: two servers may not share one.
    fn check_hostnames(&mut self) {
        let mut hostnames: BTreeMap<String, Address> = BTreeMap::new();
        for r in self.resources.values() {
            if let (Address::Server(_), Some(h)) = (&r.addr, str_field(&r.config, "hostname")) {
                if let Some(prev) = hostnames.insert(h.to_string(), r.addr.clone()) {
                    self.errors.push(Diagnostic::new(
                        Some(r.addr.to_string()),
                        r.declared_at.clone(),
                        format!("duplicate hostname {h:?}: {prev} has it too"),
                    ));
                }
            }
        }
    }

    /// Explicit depends_on: each must name a declared resource.
    fn resolve_depends_on(&mut self) {
        for (addr, dep) in std::mem::take(&mut self.explicit) {
            let at = self
                .resources
                .get(&addr)
                .and_then(|r| r.declared_at.clone());
            match dep.parse::<Address>() {
                Ok(d) if self.resources.contains_key(&d) => push_dep(&mut self.resources, &addr, d),
                Ok(d) => self.errors.push(Diagnostic::new(
                    Some(addr.to_string()),
                    at,
                    format!("depends_on names {d}, which is not declared"),
                )),
                Err(e) => self.errors.push(Diagnostic::new(
                    Some(addr.to_string()),
                    at,
                    format!("depends_on: {e}"),
                )),
            }
        }
    }

    /// References: each is an edge, and must point at a declared resource and at an attribute
    /// it has; a reference to a secret makes the referring path secret too. The attribute
    /// errors come after the others.
    fn resolve_references(&mut self, addrs: &BTreeSet<Address>) {
        let mut refs: Vec<RefAt> = Vec::new();
        let mut attr_errors = Vec::new();
        let mut shown: Vec<(Address, crate::model::References)> = Vec::new();
        for r in self.resources.values() {
            let at =
                |e: String| Diagnostic::new(Some(r.addr.to_string()), r.declared_at.clone(), e);
            attr_errors.extend(crate::attrs::check_ignore_changes(r).into_iter().map(at));
            let mut found = Vec::new();
            if let Err(e) = find_refs(&r.config, "", &mut found) {
                self.errors.push(at(e));
                continue;
            }
            let mut by_attr = Vec::new();
            for (path, rp) in found {
                let resolved = resolve_ref(&rp, addrs);
                shows_reference(
                    &mut by_attr,
                    &path,
                    &rp,
                    resolved.as_ref().ok().map(|(t, _)| t),
                );
                match resolved {
                    Ok((target, attr)) => {
                        let to = &self.resources[&target];
                        if let Err(e) = crate::attrs::check_ref_attr(to, &attr, self.bound) {
                            attr_errors.push(at(format!("{path} refers to {rp}, but {e}")));
                        }
                        refs.push(RefAt {
                            from: r.addr.clone(),
                            path,
                            target,
                            attr: attr.join("."),
                        });
                    }
                    Err(e) => self
                        .errors
                        .push(at(format!("{path} refers to {rp}, but {e}"))),
                }
            }
            if !by_attr.is_empty() {
                shown.push((r.addr.clone(), by_attr));
            }
        }
        for (a, by_attr) in shown {
            if let Some(r) = self.resources.get_mut(&a) {
                r.references = by_attr;
            }
        }
        self.errors.extend(attr_errors);
        for r in &refs {
            push_dep(&mut self.resources, &r.from, r.target.clone());
        }
        propagate_sensitive(&mut self.resources, &refs);
    }

    /// Checks the outputs' references; returns the outputs that show a secret.
    fn check_outputs(
        &mut self,
        outputs: &Map<String, Value>,
        addrs: &BTreeSet<Address>,
    ) -> BTreeSet<String> {
        let mut sensitive_outputs = BTreeSet::new();
        for (oname, ov) in outputs {
            let mut found = Vec::new();
            let key = format!("outputs.{oname}");
            if let Err(e) = find_refs(ov, "", &mut found) {
                self.err(None, &key, format!("outputs.{oname}: {e}"));
            }
            for (_, rp) in found {
                let (target, attr) = match resolve_ref(&rp, addrs) {
                    Ok(x) => x,
                    Err(e) => {
                        self.err(
                            None,
                            &key,
                            format!("outputs.{oname} refers to {rp}, but {e}"),
                        );
                        continue;
                    }
                };
                let to = &self.resources[&target];
                let problem = crate::attrs::check_ref_attr(to, &attr, self.bound).err();
                if shows_secret(&attr.join("."), &to.sensitive) {
                    sensitive_outputs.insert(oname.clone());
                }
                if let Some(e) = problem {
                    self.err(
                        None,
                        &key,
                        format!("outputs.{oname} refers to {rp}, but {e}"),
                    );
                }
            }
        }
        sensitive_outputs
    }
}

/// Adds the reference `rp` found at `path` (naming `target` when it resolved) to `by_attr`, the
/// references by top-level attribute a plan shows: each as written, then the address it names,
/// each once.
fn shows_reference(
    by_attr: &mut crate::model::References,
    path: &str,
    rp: &RefPath,
    target: Option<&Address>,
) {
    let top = path.split(['.', '[']).next().unwrap_or_default();
    let i = match by_attr.iter().position(|(k, _)| k == top) {
        Some(i) => i,
        None => {
            by_attr.push((top.to_string(), Vec::new()));
            by_attr.len() - 1
        }
    };
    let refs = &mut by_attr[i].1;
    for text in std::iter::once(rp.0.join(".")).chain(target.map(Address::to_string)) {
        if !refs.contains(&text) {
            refs.push(text);
        }
    }
}

/// A reference found in a resource's configuration: at `path` of `from`, to `attr` of `target`.
struct RefAt {
    from: Address,
    path: String,
    target: Address,
    attr: String,
}

/// Whether a reference to `attr` shows a secret of a resource whose sensitive paths are
/// `sensitive`: `attr` is one of them or lies under one, or holds one (a whole object
/// referenced).
fn shows_secret(attr: &str, sensitive: &[String]) -> bool {
    (attr.is_empty() && !sensitive.is_empty())
        || crate::sensitive::is_sensitive(attr, sensitive)
        || sensitive.iter().any(|p| {
            p.strip_prefix(attr)
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// A value that shows a secret is a secret: the configuration path holding a reference to a
/// sensitive value becomes sensitive in the referencing resource, along chains of references
/// (a worklist from the resources that declare secrets; nothing to do when none does).
fn propagate_sensitive(resources: &mut BTreeMap<Address, Resource>, refs: &[RefAt]) {
    let mut work: Vec<Address> = resources
        .values()
        .filter(|r| !r.sensitive.is_empty())
        .map(|r| r.addr.clone())
        .collect();
    if work.is_empty() {
        return;
    }
    let mut by_target: BTreeMap<&Address, Vec<&RefAt>> = BTreeMap::new();
    for r in refs {
        by_target.entry(&r.target).or_default().push(r);
    }
    while let Some(target) = work.pop() {
        let Some(referrers) = by_target.get(&target) else {
            continue;
        };
        for r in referrers {
            if !shows_secret(&r.attr, &resources[&target].sensitive) {
                continue;
            }
            let Some(from) = resources.get_mut(&r.from) else {
                continue;
            };
            if !crate::sensitive::is_sensitive(&r.path, &from.sensitive) {
                from.sensitive.push(r.path.clone());
                work.push(r.from.clone());
            }
        }
    }
}

fn push_dep(resources: &mut BTreeMap<Address, Resource>, addr: &Address, dep: Address) {
    if let Some(r) = resources.get_mut(addr) {
        if !r.depends_on.contains(&dep) {
            r.depends_on.push(dep);
        }
    }
}

/// Splits a reference into the address it targets and the attribute path, given the declared
/// addresses (`cluster.a.b.x` is component `b`'s attribute when that component exists).
pub fn resolve_ref(
    rp: &RefPath,
    addrs: &BTreeSet<Address>,
) -> Result<(Address, Vec<String>), String> {
    let p = &rp.0;
    let split = |n: usize| -> Result<(Address, Vec<String>), String> {
        let a: Address = p[..n].join(".").parse()?;
        Ok((a, p[n..].to_vec()))
    };
    let candidate = match p[0].as_str() {
        "server" | "cluster" => {
            if p[0] == "cluster" && p.len() >= 4 {
                if let Ok((a, rest)) = split(3) {
                    if addrs.contains(&a) {
                        return Ok((a, rest));
                    }
                }
            }
            split(2)?
        }
        "taskserv" if p.len() >= 4 => split(3)?,
        "taskserv" => {
            return Err("a taskserv reference needs taskserv.SERVER.NAME.ATTRIBUTE".into())
        }
        other => {
            return Err(format!(
                "{other:?} is not a resource kind (server, taskserv, cluster)"
            ))
        }
    };
    if addrs.contains(&candidate.0) {
        Ok(candidate)
    } else {
        Err(format!("{} is not declared", candidate.0))
    }
}

/// Loads one server and its taskservs; returns its provider name.
fn load_server(
    cx: &mut Ctx,
    name: &Name,
    srv: &mut Value,
    providers: &Map<String, Value>,
) -> Option<String> {
    let addr = Address::Server(name.clone());
    let key = format!("servers.{name}");
    let provider = str_field(srv, "provider").unwrap_or_default().to_string();
    if !cx.bound.registry().has_provider(&provider) {
        cx.err(
            Some(&addr),
            &key,
            format!(
                "unknown provider {provider:?} (known: {})",
                cx.bound.registry().provider_names().join(", ")
            ),
        );
        return None;
    }
    let defaults = providers
        .get(&provider)
        .and_then(|p| p.get("defaults"))
        .unwrap_or(&Value::Null);
    let config = server_config(cx, name, srv, defaults, &provider);
    if let Ok(p) = cx.bound.provider(&provider) {
        for problem in p.check_server(&config) {
            cx.err(
                Some(&addr),
                &key,
                format!("{problem} (provider {provider})"),
            );
        }
    }
    let declared_at = cx.at(&key);
    for d in strings(srv.get("depends_on")) {
        cx.explicit.push((addr.clone(), d));
    }
    cx.insert(Resource {
        addr: addr.clone(),
        implementation: provider.clone(),
        config: std::sync::Arc::new(config),
        depends_on: Vec::new(),
        lifecycle: lifecycle(srv),
        declared_at,
        sensitive: strings(srv.get("sensitive")),
        defaults: Vec::new(),
        references: Vec::new(),
    });
    let on = OnServer {
        name,
        addr,
        key,
        taskservs: srv.get("taskservs").and_then(Value::as_object),
        default_taskserv: cx
            .bound
            .provider(&provider)
            .ok()
            .and_then(|p| p.default_taskserv().map(str::to_string)),
    };
    for (tname, ts) in entries(srv.get("taskservs")) {
        load_taskserv(cx, &on, tname, ts);
    }
    Some(provider)
}

/// A server's configuration: its own values (moved out of `srv`), else its provider's defaults
/// (copied), else the schema's; a missing plan or zone is an error.
fn server_config(
    cx: &mut Ctx,
    name: &Name,
    srv: &mut Value,
    defaults: &Value,
    provider: &str,
) -> Value {
    let addr = Address::Server(name.clone());
    let key = format!("servers.{name}");
    // Sized for the nine fields below: grown one insert at a time it ends with room for 16.
    let mut config = Map::with_capacity(9);
    config.insert(
        "hostname".into(),
        srv.get_mut("hostname")
            .map(Value::take)
            .unwrap_or_else(|| Value::String(name.to_string())),
    );
    let mut take = |k: &str| {
        srv.get_mut(k)
            .map(Value::take)
            .or_else(|| defaults.get(k).cloned())
    };
    for k in ["plan", "zone"] {
        match take(k) {
            Some(v) => {
                config.insert(k.into(), v);
            }
            None => cx.err(
                Some(&addr),
                &key,
                format!("no {k}: set {k} on the server or providers.{provider}.defaults.{k}"),
            ),
        }
    }
    for k in [
        "os",
        "ssh_keys",
        "tags",
        "firewall_rules",
        "storage",
        "network",
    ] {
        // The server's own value, else the provider's default, else ServerCommon's default
        // (the Server contract leaves these unset so the provider's defaults can apply).
        let builtin = match k {
            "os" => Some(Value::String("ubuntu-22.04".into())),
            "ssh_keys" | "firewall_rules" => Some(Value::Array(Vec::new())),
            "tags" => Some(Value::Object(Map::new())),
            _ => None,
        };
        if let Some(v) = take(k).or(builtin) {
            config.insert(k.into(), v);
        }
    }
    Value::Object(config)
}

/// The server a taskserv is declared on, as its loading needs it.
struct OnServer<'a> {
    name: &'a Name,
    addr: Address,
    key: String,
    /// Every taskserv declared on the server (for requires and conflicts).
    taskservs: Option<&'a Map<String, Value>>,
    /// The provider's taskserv for a taskserv that names no implementation.
    default_taskserv: Option<String>,
}

impl OnServer<'_> {
    fn declares(&self, taskserv: &str) -> bool {
        self.taskservs.is_some_and(|t| t.contains_key(taskserv))
    }
}

/// Loads one taskserv of a server.
fn load_taskserv(cx: &mut Ctx, on: &OnServer, tname: &str, ts: &Value) {
    let tkey = format!("{}.taskservs.{tname}", on.key);
    let Ok(tn) = Name::new(tname) else {
        cx.err(
            Some(&on.addr),
            &tkey,
            format!("taskservs.{tname}: invalid taskserv name"),
        );
        return;
    };
    let taddr = Address::Taskserv(on.name.clone(), tn);
    // A provider's own default comes first (the sim provider's servers cannot run
    // scripts, so they get the sim taskserv); otherwise the taskserv of the same name
    // (an extension directory or the built-in catalog).
    let implementation = match str_field(ts, "implementation") {
        Some(i) => i.to_string(),
        None => on
            .default_taskserv
            .clone()
            .unwrap_or_else(|| tname.to_string()),
    };
    if !cx.bound.registry().has_taskserv(&implementation) {
        let msg = crate::registry::unknown_message(
            "taskserv",
            &implementation,
            &cx.bound.registry().taskserv_names(),
            cx.bound.registry().searched("taskserv"),
        );
        cx.err(Some(&taddr), &tkey, msg);
        return;
    }
    let mut config = Map::new();
    for k in [
        "version",
        "settings",
        "on_error",
        "max_retries",
        "health_check",
    ] {
        if let Some(v) = ts.get(k) {
            config.insert(k.into(), v.clone());
        }
    }
    let requires = cx.bound.registry().taskserv_requires(&implementation);
    let mut deps = vec![on.addr.clone()];
    for (dname, kind) in taskserv_needs(ts, requires) {
        let present = on.declares(&dname);
        let name = on.name;
        match kind.as_str() {
            "Requires" if !present => cx.err(
                Some(&taddr),
                &tkey,
                format!("requires taskserv {dname:?}, which is not declared on server {name}"),
            ),
            "ConflictsWith" if present => cx.err(
                Some(&taddr),
                &tkey,
                format!("conflicts with taskserv.{name}.{dname}, which is also declared on server {name}"),
            ),
            "Requires" | "PrefersBefore" if present => match Name::new(&dname) {
                Ok(dn) => deps.push(Address::Taskserv(name.clone(), dn)),
                Err(e) => cx.err(Some(&taddr), &tkey, e),
            },
            _ => {}
        }
    }
    let declared_at = cx.at(&tkey);
    cx.insert(Resource {
        addr: taddr,
        implementation,
        config: std::sync::Arc::new(Value::Object(config)),
        depends_on: deps,
        lifecycle: lifecycle(ts),
        declared_at,
        sensitive: strings(ts.get("sensitive")),
        defaults: cx.defaults(&tkey),
        references: Vec::new(),
    });
}

/// A taskserv's relations to the other taskservs of its server as (name, kind): its
/// `depends_on` (a bare name is `Requires`), then what its implementation's manifest requires
/// and the declaration does not list.
fn taskserv_needs(ts: &Value, requires: &[String]) -> Vec<(String, String)> {
    let mut declared = ts
        .get("depends_on")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for need in requires {
        let listed = declared.iter().any(|d| {
            d.as_str() == Some(need.as_str()) || str_field(d, "name") == Some(need.as_str())
        });
        if !listed {
            declared.push(serde_json::json!({"name": need, "kind": "Requires"}));
        }
    }
    declared
        .iter()
        .map(|d| match d {
            Value::String(s) => (s.clone(), "Requires".to_string()),
            other => (
                str_field(other, "name").unwrap_or_default().to_string(),
                str_field(other, "kind").unwrap_or("Requires").to_string(),
            ),
        })
        .collect()
}

/// Loads one cluster and its enabled components.
fn load_cluster(cx: &mut Ctx, name: &Name, cl: &Value, server_provider: &BTreeMap<Name, String>) {
    let addr = Address::Cluster(name.clone());
    let key = format!("clusters.{name}");
    let mut deps = Vec::new();
    let mut first_provider = None;
    for s in strings(cl.get("servers")) {
        match Name::new(&s) {
            Ok(n) if server_provider.contains_key(&n) => {
                first_provider.get_or_insert_with(|| server_provider[&n].clone());
                deps.push(Address::Server(n));
            }
            _ => cx.err(
                Some(&addr),
                &key,
                format!("servers names {s:?}, but server.{s} is not declared"),
            ),
        }
    }
    let Some(implementation) = cluster_implementation(cx, name, cl, first_provider.as_deref())
    else {
        return;
    };
    let mut config = obj(cl);
    for k in ["components", "depends_on", "lifecycle", "implementation"] {
        config.remove(k);
    }
    config
        .entry("name")
        .or_insert_with(|| Value::String(name.to_string()));
    for d in strings(cl.get("depends_on")) {
        cx.explicit.push((addr.clone(), d));
    }
    let declared_at = cx.at(&key);
    cx.insert(Resource {
        addr,
        implementation: implementation.clone(),
        config: std::sync::Arc::new(Value::Object(config)),
        depends_on: deps,
        lifecycle: lifecycle(cl),
        declared_at,
        sensitive: Vec::new(),
        defaults: cx.defaults(&key),
        references: Vec::new(),
    });
    let enabled: Vec<&Value> = cl
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("enabled").and_then(Value::as_bool).unwrap_or(true))
        .collect();
    let names: BTreeSet<String> = enabled
        .iter()
        .filter_map(|c| str_field(c, "name").map(str::to_string))
        .collect();
    for c in enabled {
        load_component(cx, name, cl, &implementation, &names, c);
    }
}

/// The cluster's implementation: the one it names, else the cluster extension of its name,
/// else its first server's provider's default; an unknown one is an error (None).
fn cluster_implementation(
    cx: &mut Ctx,
    name: &Name,
    cl: &Value,
    first_provider: Option<&str>,
) -> Option<String> {
    let implementation = match str_field(cl, "implementation") {
        Some(i) => Some(i.to_string()),
        None if cx.bound.registry().has_cluster(name.as_str()) => Some(name.to_string()),
        None => first_provider
            .and_then(|p| cx.bound.provider(p).ok())
            .and_then(|p| p.default_cluster().map(str::to_string)),
    };
    match implementation {
        Some(i) if cx.bound.registry().has_cluster(&i) => Some(i),
        other => {
            let msg = format!(
                "unknown cluster implementation {:?} (known: {}); set `implementation`",
                other.unwrap_or_else(|| name.to_string()),
                cx.bound.registry().cluster_names().join(", ")
            );
            cx.err(
                Some(&Address::Cluster(name.clone())),
                &format!("clusters.{name}"),
                msg,
            );
            None
        }
    }
}

/// Loads one enabled component `c` of cluster `name` (`cl`), whose other enabled components
/// are `enabled`.
fn load_component(
    cx: &mut Ctx,
    name: &Name,
    cl: &Value,
    implementation: &str,
    enabled: &BTreeSet<String>,
    c: &Value,
) {
    let addr = Address::Cluster(name.clone());
    let key = format!("clusters.{name}");
    let cname = str_field(c, "name").unwrap_or_default().to_string();
    let ckey = format!("{key}.components.{cname}");
    let Ok(cn) = Name::new(&cname) else {
        cx.err(
            Some(&addr),
            &ckey,
            format!("component {cname:?}: invalid name"),
        );
        return;
    };
    let caddr = Address::Component(name.clone(), cn);
    let mut cdeps = vec![addr.clone()];
    for d in strings(c.get("dependencies")) {
        match Name::new(&d) {
            Ok(dn) if enabled.contains(&d) => cdeps.push(Address::Component(name.clone(), dn)),
            _ => cx.err(
                Some(&caddr),
                &ckey,
                format!("depends on component {d:?}, which is not an enabled component of cluster {name}"),
            ),
        }
    }
    let declared_at = cx.at(&ckey).or_else(|| cx.at(&key));
    // A component without a version of its own follows the cluster's: changing the
    // cluster's version upgrades it. A taskserv component's versions are the taskserv's
    // (a cluster version is no containerd version): empty stays the taskserv's default.
    let mut c = c.clone();
    let follows = str_field(&c, "version").is_none_or(str::is_empty)
        && str_field(&c, "type") != Some("taskserv");
    if let (true, Some(v), Value::Object(o)) = (follows, str_field(cl, "version"), &mut c) {
        o.insert("version".into(), Value::String(v.to_string()));
    }
    cx.insert(Resource {
        addr: caddr,
        implementation: implementation.to_string(),
        config: std::sync::Arc::new(c),
        depends_on: cdeps,
        lifecycle: lifecycle(cl),
        declared_at,
        sensitive: Vec::new(),
        defaults: cx.defaults(&ckey),
        references: Vec::new(),
    });
}

#[cfg(test)]
mod tests {
    use super::{shows_secret, taskserv_needs};
    use serde_json::json;

    #[test]
    fn a_taskservs_needs_are_its_depends_on_then_what_its_manifest_requires() {
        let pair = |n: &str, k: &str| (n.to_string(), k.to_string());
        let ts = json!({"depends_on": ["etcd", {"name": "lb", "kind": "ConflictsWith"}, {"name": "dns"}]});
        // A bare name and a kindless object require; the manifest adds what is not listed.
        assert_eq!(
            taskserv_needs(&ts, &["etcd".into(), "containerd".into()]),
            [
                pair("etcd", "Requires"),
                pair("lb", "ConflictsWith"),
                pair("dns", "Requires"),
                pair("containerd", "Requires"),
            ]
        );
        assert_eq!(taskserv_needs(&json!({}), &[]), []);
    }

    #[test]
    fn a_reference_shows_a_secret_at_under_or_above_a_sensitive_path() {
        let paths = vec!["tags.token".to_string()];
        assert!(shows_secret("tags.token", &paths)); // the secret itself
        assert!(shows_secret("tags.token.x", &paths)); // under it
        assert!(shows_secret("tags", &paths)); // an object holding it
        assert!(shows_secret("", &paths)); // the whole resource
        assert!(!shows_secret("tags.team", &paths));
        assert!(!shows_secret("tags.tokens", &paths));
        assert!(!shows_secret("tag", &paths));
        assert!(!shows_secret("", &[]));
    }
}
