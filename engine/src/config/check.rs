//! The `Workspace` contract of `lib/prov/schemas.ncl`, checked in Rust on an evaluated value.
//!
//! Applying that contract in Nickel is ~45 % of a large evaluation (at 10,000 servers: 4.7 G of
//! 11 G instructions; docs/performance.md). So [`super::eval`] first evaluates the workspace
//! *without* it and checks the result here: the same field names, types, enum tags, number
//! ranges and port syntax, filling the same defaults in the exported JSON. This check only
//! *accepts*: whenever it finds anything it does not accept, or anything whose outcome under
//! Nickel's merge it cannot be sure of (a defaulted field the workspace also gave a default of
//! its own, a field without a value, a `not_exported` one), the workspace is evaluated again
//! with Nickel's contract, which then gives the value or its usual diagnostic. Nickel's schema
//! stays the one definition users read and errors come from; this is its fast path, held to it
//! by a parity test over every field of the schema (`engine/tests/config_eval.rs`).
//!
//! The value is checked on the evaluated Nickel value (to tell an enum tag from a string, which
//! export to the same JSON, and to see merge priorities) — or on plain data read without Nickel
//! ([`super::data`]), through the same [`Node`] view — while defaults are filled into the
//! exported JSON beside it.

use std::collections::BTreeSet;

use nickel_lang_core::eval::value::{Container, NickelValue};
use nickel_lang_core::term::MergePriority;
use serde_json::{Map, Value};

use super::data::Data;

/// A record field as the check sees it.
pub(crate) struct FieldRef<'a, N: ?Sized> {
    /// `None`: declared without a value.
    pub value: Option<&'a N>,
    pub not_exported: bool,
    pub optional: bool,
    /// At the default (bottom) merge priority: the workspace's own `| default`.
    pub bottom: bool,
}

/// What the check needs of an evaluated value: a Nickel value, or [`Data`] read without Nickel.
pub(crate) trait Node {
    /// The fields of a record (empty for `{}`); `None` for anything else.
    fn fields(&self) -> Option<Vec<(&str, FieldRef<'_, Self>)>>;
    /// The elements of an array; `None` for anything else.
    fn items(&self) -> Option<Vec<&Self>>;
    fn string(&self) -> Option<&str>;
    fn is_bool(&self) -> bool;
    fn is_number(&self) -> bool;
    fn enum_tag(&self) -> Option<&str>;
}

impl Node for NickelValue {
    fn fields(&self) -> Option<Vec<(&str, FieldRef<'_, Self>)>> {
        Some(match self.as_record()? {
            Container::Empty => Vec::new(),
            Container::Alloc(r) => r
                .fields
                .iter()
                .map(|(k, f)| {
                    let field = FieldRef {
                        value: f.value.as_ref(),
                        not_exported: f.metadata.not_exported(),
                        optional: f.metadata.opt(),
                        bottom: matches!(f.metadata.priority(), MergePriority::Bottom),
                    };
                    (k.label(), field)
                })
                .collect(),
        })
    }
    fn items(&self) -> Option<Vec<&Self>> {
        Some(match self.as_array()? {
            Container::Empty => Vec::new(),
            Container::Alloc(a) => a.array.iter().collect(),
        })
    }
    fn string(&self) -> Option<&str> {
        self.as_string().map(|s| s.as_str())
    }
    fn is_bool(&self) -> bool {
        self.as_bool().is_some()
    }
    fn is_number(&self) -> bool {
        self.as_number().is_some()
    }
    fn enum_tag(&self) -> Option<&str> {
        self.as_enum_tag().map(|t| t.label())
    }
}

impl Node for Data {
    fn fields(&self) -> Option<Vec<(&str, FieldRef<'_, Self>)>> {
        let Data::Record(fields) = self else {
            return None;
        };
        let plain = |d| FieldRef {
            value: Some(d),
            not_exported: false,
            optional: false,
            bottom: false,
        };
        Some(
            fields
                .iter()
                .map(|(k, _, d)| (k.as_str(), plain(d)))
                .collect(),
        )
    }
    fn items(&self) -> Option<Vec<&Self>> {
        match self {
            Data::Array(items) => Some(items.iter().map(|(_, d)| d).collect()),
            _ => None,
        }
    }
    fn string(&self) -> Option<&str> {
        match self {
            Data::Str(s) => Some(s),
            _ => None,
        }
    }
    fn is_bool(&self) -> bool {
        matches!(self, Data::Bool(_))
    }
    fn is_number(&self) -> bool {
        matches!(self, Data::Num(_))
    }
    fn enum_tag(&self) -> Option<&str> {
        match self {
            Data::Enum(s) => Some(s),
            _ => None,
        }
    }
}

/// Something the Rust check does not accept; Nickel's contract decides instead.
#[derive(Debug)]
pub(crate) struct Reject;

type Checked = Result<(), Reject>;

#[derive(Clone, Copy)]
enum Ty {
    Str,
    Bool,
    /// `std.number.Nat`: an integer ≥ 0.
    Nat,
    /// A number ≥ 0.
    NonNegative,
    /// A port or a port range as a string (`PortSpec`).
    PortSpec,
    Enum(&'static [&'static str]),
    Array(&'static Ty),
    /// `{ _ | T }`
    Dict(&'static Ty),
    Rec(&'static Rec),
    /// `{ .. }`: any record.
    AnyRecord,
    Dyn,
    /// `TaskservDependency`: a name, or a `{ name, kind }` record.
    TaskservDependency,
}

#[derive(Clone, Copy)]
enum Presence {
    Required,
    Optional,
    Default(Def),
}

/// A contract default, as it exports.
#[derive(Clone, Copy)]
enum Def {
    Str(&'static str),
    Bool(bool),
    Num(u64),
    EmptyRecord,
    EmptyArray,
}

impl Def {
    fn json(self) -> Value {
        match self {
            Def::Str(s) => Value::String(s.into()),
            Def::Bool(b) => Value::Bool(b),
            Def::Num(n) => Value::from(n),
            Def::EmptyRecord => Value::Object(Map::new()),
            Def::EmptyArray => Value::Array(Vec::new()),
        }
    }
}

struct F {
    name: &'static str,
    ty: Ty,
    presence: Presence,
}

struct Rec {
    fields: &'static [F],
    /// `..`: other fields are allowed (and not checked).
    open: bool,
}

const fn req(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        presence: Presence::Required,
    }
}
const fn opt(name: &'static str, ty: Ty) -> F {
    F {
        name,
        ty,
        presence: Presence::Optional,
    }
}
const fn def(name: &'static str, ty: Ty, d: Def) -> F {
    F {
        name,
        ty,
        presence: Presence::Default(d),
    }
}

const STR: Ty = Ty::Str;
const STRINGS: Ty = Ty::Array(&Ty::Str);

// --- schemas.ncl, transcribed (same order as there) -----------------------------------------

static LIFECYCLE: Rec = Rec {
    fields: &[
        def("prevent_destroy", Ty::Bool, Def::Bool(false)),
        def("create_before_destroy", Ty::Bool, Def::Bool(false)),
        def("ignore_changes", STRINGS, Def::EmptyArray),
    ],
    open: false,
};

static FIREWALL_RULE: Rec = Rec {
    fields: &[
        req("direction", Ty::Enum(&["ingress", "egress"])),
        req("protocol", Ty::Enum(&["tcp", "udp", "icmp"])),
        opt("port", Ty::PortSpec),
        opt("source", STR),
        opt("destination", STR),
        req("action", Ty::Enum(&["allow", "deny"])),
    ],
    open: false,
};
const FIREWALL_RULES: Ty = Ty::Array(&Ty::Rec(&FIREWALL_RULE));

static AUTH: Rec = Rec {
    fields: &[
        req(
            "method",
            Ty::Enum(&["api_key", "certificate", "oauth", "basic"]),
        ),
        opt("api_key", STR),
        opt("api_secret", STR),
        opt("username", STR),
        opt("password", STR),
        opt("certificate_path", STR),
        opt("private_key_path", STR),
    ],
    open: false,
};

static API: Rec = Rec {
    fields: &[
        req("base_url", STR),
        def("version", STR, Def::Str("v1")),
        def("timeout", Ty::NonNegative, Def::Num(30)),
        def("retries", Ty::Nat, Def::Num(3)),
    ],
    open: false,
};

static PROVIDER_DEFAULTS: Rec = Rec {
    fields: &[
        opt("plan", STR),
        opt("zone", STR),
        opt("os", STR),
        opt("ssh_keys", STRINGS),
        opt("firewall_rules", FIREWALL_RULES),
    ],
    open: false,
};

static FEATURES: Rec = Rec {
    fields: &[
        def("load_balancer", Ty::Bool, Def::Bool(false)),
        def("storage_encryption", Ty::Bool, Def::Bool(true)),
        def("backup", Ty::Bool, Def::Bool(true)),
        def("monitoring", Ty::Bool, Def::Bool(false)),
    ],
    open: false,
};

static PROVIDER_SETTINGS: Rec = Rec {
    fields: &[
        opt("auth", Ty::Rec(&AUTH)),
        opt("api", Ty::Rec(&API)),
        opt("defaults", Ty::Rec(&PROVIDER_DEFAULTS)),
        opt("features", Ty::Rec(&FEATURES)),
    ],
    open: true,
};

static STORAGE: Rec = Rec {
    fields: &[
        opt("size", Ty::Nat),
        opt("type", STR),
        def("encrypted", Ty::Bool, Def::Bool(true)),
    ],
    open: false,
};

static NETWORK: Rec = Rec {
    fields: &[
        def("public_ip", Ty::Bool, Def::Bool(true)),
        opt("private_network", STR),
        opt("bandwidth", Ty::Nat),
    ],
    open: false,
};

static TASKSERV_DEPENDENCY_RECORD: Rec = Rec {
    fields: &[
        req("name", STR),
        def(
            "kind",
            Ty::Enum(&["Requires", "PrefersBefore", "ConflictsWith"]),
            Def::Str("Requires"),
        ),
    ],
    open: false,
};

static HEALTH_CHECK: Rec = Rec {
    fields: &[
        opt("endpoint", STR),
        opt("command", STR),
        opt("expect", STR),
        def("interval", Ty::NonNegative, Def::Num(30)),
        def("timeout", Ty::NonNegative, Def::Num(5)),
        def("retries", Ty::Nat, Def::Num(3)),
    ],
    open: false,
};

static TASKSERV: Rec = Rec {
    fields: &[
        opt("version", STR),
        opt("implementation", STR),
        def("settings", Ty::AnyRecord, Def::EmptyRecord),
        def(
            "depends_on",
            Ty::Array(&Ty::TaskservDependency),
            Def::EmptyArray,
        ),
        def(
            "on_error",
            Ty::Enum(&["Stop", "Continue", "Retry"]),
            Def::Str("Stop"),
        ),
        def("max_retries", Ty::Nat, Def::Num(0)),
        opt("health_check", Ty::Rec(&HEALTH_CHECK)),
        def("lifecycle", Ty::Rec(&LIFECYCLE), Def::EmptyRecord),
        def("sensitive", STRINGS, Def::EmptyArray),
    ],
    open: false,
};

static SERVER: Rec = Rec {
    fields: &[
        opt("os", STR),
        opt("ssh_keys", STRINGS),
        opt("tags", Ty::Dict(&Ty::Str)),
        opt("firewall_rules", FIREWALL_RULES),
        opt("storage", Ty::Rec(&STORAGE)),
        opt("network", Ty::Rec(&NETWORK)),
        req("provider", STR),
        opt("hostname", STR),
        opt("plan", STR),
        opt("zone", STR),
        opt("depends_on", STRINGS),
        opt("lifecycle", Ty::Rec(&LIFECYCLE)),
        opt("taskservs", Ty::Dict(&Ty::Rec(&TASKSERV))),
        opt("sensitive", STRINGS),
    ],
    open: false,
};

static COMPONENT_RESOURCES: Rec = Rec {
    fields: &[
        def("cpu", STR, Def::Str("")),
        def("memory", STR, Def::Str("")),
        def("storage", STR, Def::Str("")),
        def("replicas", Ty::Nat, Def::Num(1)),
    ],
    open: false,
};

static COMPONENT: Rec = Rec {
    fields: &[
        req("name", STR),
        req(
            "type",
            Ty::Enum(&["taskserv", "application", "infrastructure"]),
        ),
        def("version", STR, Def::Str("")),
        def("enabled", Ty::Bool, Def::Bool(true)),
        def("dependencies", STRINGS, Def::EmptyArray),
        def("config", Ty::AnyRecord, Def::EmptyRecord),
        def("resources", Ty::Rec(&COMPONENT_RESOURCES), Def::EmptyRecord),
    ],
    open: false,
};

static CLUSTER_RESOURCES: Rec = Rec {
    fields: &[
        def("min_nodes", Ty::Nat, Def::Num(1)),
        def("cpu_per_node", STR, Def::Str("2")),
        def("memory_per_node", STR, Def::Str("4Gi")),
        def("storage_per_node", STR, Def::Str("20Gi")),
    ],
    open: false,
};

static CLUSTER_NETWORK: Rec = Rec {
    fields: &[
        def("cluster_cidr", STR, Def::Str("10.244.0.0/16")),
        def("service_cidr", STR, Def::Str("10.96.0.0/12")),
        def("dns_domain", STR, Def::Str("cluster.local")),
    ],
    open: false,
};

static CLUSTER_FEATURES: Rec = Rec {
    fields: &[
        def("monitoring", Ty::Bool, Def::Bool(true)),
        def("logging", Ty::Bool, Def::Bool(true)),
        def("ingress", Ty::Bool, Def::Bool(false)),
        def("storage", Ty::Bool, Def::Bool(true)),
    ],
    open: false,
};

static CLUSTER: Rec = Rec {
    fields: &[
        // ClusterCommon
        def("version", STR, Def::Str("1.0.0")),
        def("description", STR, Def::Str("")),
        req("components", Ty::Array(&Ty::Rec(&COMPONENT))),
        def("resources", Ty::Rec(&CLUSTER_RESOURCES), Def::EmptyRecord),
        def("network", Ty::Rec(&CLUSTER_NETWORK), Def::EmptyRecord),
        def("features", Ty::Rec(&CLUSTER_FEATURES), Def::EmptyRecord),
        // Cluster
        opt("name", STR),
        opt("implementation", STR),
        def("servers", STRINGS, Def::EmptyArray),
        def(
            "on_error",
            Ty::Enum(&["stop", "continue", "rollback"]),
            Def::Str("stop"),
        ),
        def("depends_on", STRINGS, Def::EmptyArray),
        def("lifecycle", Ty::Rec(&LIFECYCLE), Def::EmptyRecord),
    ],
    open: false,
};

static BACKEND: Rec = Rec {
    fields: &[def("type", STR, Def::Str("sled")), opt("conn", STR)],
    open: true,
};

static WORKSPACE: Rec = Rec {
    fields: &[
        def("backend", Ty::Rec(&BACKEND), Def::EmptyRecord),
        def(
            "providers",
            Ty::Dict(&Ty::Rec(&PROVIDER_SETTINGS)),
            Def::EmptyRecord,
        ),
        def("servers", Ty::Dict(&Ty::Rec(&SERVER)), Def::EmptyRecord),
        def("clusters", Ty::Dict(&Ty::Rec(&CLUSTER)), Def::EmptyRecord),
        def("outputs", Ty::Dict(&Ty::Dyn), Def::EmptyRecord),
    ],
    open: false,
};

// --- the check ---------------------------------------------------------------------------------

/// Where defaulted fields are listed ([`super::defaults`]): in taskservs, clusters and cluster
/// components, each less a few fields.
#[derive(Clone, Copy)]
enum Track<'a> {
    Off,
    /// Prefix of the record's fields and the fields not listed.
    At(&'a str, &'static [&'static str]),
    /// The workspace's `clusters`, a server record (its name) and its `taskservs`, a cluster's
    /// `components` (the cluster's prefix).
    Server(&'a str),
    Taskservs(&'a str),
    Clusters,
    Components(&'a str),
}

const TASKSERV_UNLISTED: &[&str] = &["implementation", "depends_on", "lifecycle", "sensitive"];
const CLUSTER_UNLISTED: &[&str] = &["components", "depends_on", "lifecycle", "implementation"];

struct Ctx {
    /// Defaulted fields filled here, as [`super::defaults::collect`] names them.
    filled: BTreeSet<String>,
}

/// Checks the workspace `value` (evaluated without the contract) against the `Workspace`
/// contract and fills its defaults into `json` (`value` exported). Returns the dotted paths of
/// the fields the defaults filled where [`super::defaults`] lists them.
pub(crate) fn workspace<N: Node + ?Sized>(
    value: &N,
    json: &mut Value,
) -> Result<BTreeSet<String>, Reject> {
    let mut ctx = Ctx {
        filled: BTreeSet::new(),
    };
    rec(&mut ctx, value, json, &WORKSPACE, Track::Off)?;
    // Servers, taskservs, clusters: only there are defaults listed.
    Ok(ctx.filled)
}

fn find<'a, 'n, N: ?Sized>(
    fields: &'a [(&'n str, FieldRef<'n, N>)],
    name: &str,
) -> Option<&'a FieldRef<'n, N>> {
    fields.iter().find(|(k, _)| *k == name).map(|(_, f)| f)
}

fn rec<N: Node + ?Sized>(
    ctx: &mut Ctx,
    v: &N,
    json: &mut Value,
    schema: &Rec,
    track: Track,
) -> Checked {
    let r = v.fields().ok_or(Reject)?;
    let Value::Object(obj) = json else {
        return Err(Reject);
    };
    // Unknown fields (any field of a closed record, with or without a value, exported or not).
    if !schema.open
        && r.iter()
            .any(|(k, _)| !schema.fields.iter().any(|f| f.name == *k))
    {
        return Err(Reject);
    }
    let mut inserted = false;
    for f in schema.fields {
        let listed = match track {
            Track::At(prefix, skip) if !skip.contains(&f.name) => Some(prefix),
            _ => None,
        };
        let given = find(&r, f.name);
        if given.is_some_and(|g| g.not_exported) {
            return Err(Reject);
        }
        match given.and_then(|g| g.value.map(|v| (g, v))) {
            Some((g, fv)) => {
                if g.bottom {
                    // The workspace's own default meets the contract's: Nickel merges them
                    // (records) or requires them equal (anything else).
                    if let Presence::Default(d) = f.presence {
                        let is_record = matches!(d, Def::EmptyRecord);
                        if !is_record && obj.get(f.name) != Some(&d.json()) {
                            return Err(Reject);
                        }
                    }
                }
                let bottom = g.bottom;
                let slot = obj.get_mut(f.name).ok_or(Reject)?;
                let path = listed.map(|p| format!("{p}.{}", f.name));
                // Below a field at the default priority nothing more is listed.
                let inner = match (&path, f.ty, track, f.name) {
                    (Some(p), Ty::Rec(_), _, _) if !bottom => Track::At(p.as_str(), &[]),
                    (_, _, Track::Off, "clusters") if std::ptr::eq(schema, &WORKSPACE) => {
                        Track::Clusters
                    }
                    (_, _, Track::Server(s), "taskservs") => Track::Taskservs(s),
                    (_, _, Track::At(p, _), "components") if std::ptr::eq(schema, &CLUSTER) => {
                        Track::Components(p)
                    }
                    _ => Track::Off,
                };
                value(ctx, fv, slot, f.ty, inner)?;
            }
            None => {
                if given.is_some_and(|g| !g.optional) {
                    // Declared without a value and not optional: Nickel's error (or the
                    // contract's default, merged in).
                    return Err(Reject);
                }
                match f.presence {
                    Presence::Required => return Err(Reject),
                    Presence::Optional => {}
                    Presence::Default(d) => {
                        let mut filled = d.json();
                        fill_defaults(&mut filled, f.ty);
                        obj.insert(f.name.to_string(), filled);
                        inserted = true;
                        if let Some(p) = listed {
                            ctx.filled.insert(format!("{p}.{}", f.name));
                        }
                    }
                }
            }
        }
    }
    if inserted {
        // Nickel exports fields sorted by name.
        obj.sort_keys();
    }
    Ok(())
}

/// A contract default of type `ty` as Nickel exports it: the defaults of the record contract
/// applied to an empty record default, recursively.
fn fill_defaults(json: &mut Value, ty: Ty) {
    let (Ty::Rec(schema), Value::Object(obj)) = (ty, json) else {
        return;
    };
    for f in schema.fields {
        if let Presence::Default(d) = f.presence {
            let mut v = d.json();
            fill_defaults(&mut v, f.ty);
            obj.insert(f.name.to_string(), v);
        }
    }
    obj.sort_keys();
}

fn value<N: Node + ?Sized>(
    ctx: &mut Ctx,
    v: &N,
    json: &mut Value,
    ty: Ty,
    track: Track,
) -> Checked {
    match ty {
        Ty::Dyn => Ok(()),
        Ty::Str => v.string().map(|_| ()).ok_or(Reject),
        Ty::Bool => v.is_bool().then_some(()).ok_or(Reject),
        Ty::Nat => {
            v.is_number().then_some(()).ok_or(Reject)?;
            json.as_u64().map(|_| ()).ok_or(Reject)
        }
        Ty::NonNegative => {
            v.is_number().then_some(()).ok_or(Reject)?;
            match json.as_f64() {
                Some(n) if n >= 0.0 => Ok(()),
                _ => Err(Reject),
            }
        }
        Ty::PortSpec => {
            v.string().ok_or(Reject)?;
            json.as_str()
                .filter(|s| port_spec(s))
                .map(|_| ())
                .ok_or(Reject)
        }
        Ty::Enum(tags) => {
            let tag = v.enum_tag().ok_or(Reject)?;
            tags.contains(&tag).then_some(()).ok_or(Reject)
        }
        Ty::Array(elem) => array(ctx, v, json, *elem, track),
        Ty::Dict(elem) => dict(ctx, v, json, *elem, track),
        Ty::Rec(schema) => rec(ctx, v, json, schema, track),
        Ty::AnyRecord => v.fields().map(|_| ()).ok_or(Reject),
        Ty::TaskservDependency => {
            if let Some(s) = v.string() {
                let mut dep = Map::new();
                dep.insert("kind".into(), Value::String("Requires".into()));
                dep.insert("name".into(), Value::String(s.to_string()));
                *json = Value::Object(dep);
                Ok(())
            } else {
                rec(ctx, v, json, &TASKSERV_DEPENDENCY_RECORD, Track::Off)
            }
        }
    }
}

/// An array of `elem`s (a cluster's components tracked by name for their defaults).
fn array<N: Node + ?Sized>(
    ctx: &mut Ctx,
    v: &N,
    json: &mut Value,
    elem: Ty,
    track: Track,
) -> Checked {
    let items = v.items().ok_or(Reject)?;
    let Value::Array(js) = json else {
        return Err(Reject);
    };
    if js.len() != items.len() {
        return Err(Reject);
    }
    for (item, j) in items.into_iter().zip(js.iter_mut()) {
        // A cluster's components are listed by name.
        let prefix = match track {
            Track::Components(cluster) => j
                .get("name")
                .and_then(Value::as_str)
                .map(|n| format!("{cluster}.components.{n}")),
            _ => None,
        };
        let inner = match &prefix {
            Some(p) => Track::At(p.as_str(), &[]),
            None => Track::Off,
        };
        value(ctx, item, j, elem, inner)?;
    }
    Ok(())
}

/// A record of `elem`s by name (servers, taskservs, clusters tracked for their defaults).
fn dict<N: Node + ?Sized>(
    ctx: &mut Ctx,
    v: &N,
    json: &mut Value,
    elem: Ty,
    track: Track,
) -> Checked {
    let r = v.fields().ok_or(Reject)?;
    let Value::Object(obj) = json else {
        return Err(Reject);
    };
    for (name, f) in &r {
        if f.not_exported {
            return Err(Reject);
        }
        let Some(fv) = f.value else {
            if f.optional {
                continue;
            }
            return Err(Reject);
        };
        let slot = obj.get_mut(*name).ok_or(Reject)?;
        // Where defaulted fields are listed (as `super::defaults` does).
        let prefix = match (track, elem) {
            (Track::Taskservs(server), Ty::Rec(r)) if std::ptr::eq(r, &TASKSERV) => Some((
                format!("servers.{server}.taskservs.{name}"),
                TASKSERV_UNLISTED,
            )),
            (Track::Clusters, Ty::Rec(r)) if std::ptr::eq(r, &CLUSTER) => {
                Some((format!("clusters.{name}"), CLUSTER_UNLISTED))
            }
            _ => None,
        };
        let inner = match (&prefix, elem) {
            (Some((p, skip)), _) => Track::At(p.as_str(), skip),
            (None, Ty::Rec(r)) if std::ptr::eq(r, &SERVER) => Track::Server(name),
            _ => Track::Off,
        };
        value(ctx, fv, slot, elem, inner)?;
    }
    Ok(())
}

/// `PortSpec`: "22" or "8000-8100", ports in 0..65535, a range in order.
fn port_spec(s: &str) -> bool {
    let port = |p: &str| -> Option<u32> {
        (1..=5).contains(&p.len()).then_some(())?;
        p.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
        p.parse::<u32>().ok().filter(|n| *n <= 65535)
    };
    match s.split_once('-') {
        None => port(s).is_some(),
        Some((a, b)) => matches!((port(a), port(b)), (Some(a), Some(b)) if a <= b),
    }
}
