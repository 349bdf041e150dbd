//! The resource model: validated addresses and names, resources with their desired config and lifecycle.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A validated name of a server, taskserv, cluster or component: what may appear between the dots of an address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    pub fn new(s: &str) -> Result<Name, String> {
        let ok_first = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if s.is_empty() || s.len() > 63 {
            return Err(format!("name {s:?} must be 1 to 63 characters long"));
        }
        if !ok_first
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "name {s:?} may only hold letters, digits, '-' and '_', and must start with a letter or digit"
            ));
        }
        Ok(Name(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Name::new(&s)
    }
}
impl From<Name> for String {
    fn from(n: Name) -> String {
        n.0
    }
}
impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of object a resource is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceKind {
    Server,
    Taskserv,
    Cluster,
    Component,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Server => "server",
            ResourceKind::Taskserv => "taskserv",
            ResourceKind::Cluster => "cluster",
            ResourceKind::Component => "component",
        }
    }
    pub fn parse(s: &str) -> Option<ResourceKind> {
        Some(match s {
            "server" => ResourceKind::Server,
            "taskserv" => ResourceKind::Taskserv,
            "cluster" => ResourceKind::Cluster,
            "component" => ResourceKind::Component,
            _ => return None,
        })
    }
}

/// A validated resource address: `server.NAME`, `taskserv.SERVER.NAME`, `cluster.NAME` or
/// `cluster.NAME.COMPONENT`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Address {
    Server(Name),
    Taskserv(Name, Name),
    Cluster(Name),
    Component(Name, Name),
}

impl Address {
    pub fn server(name: &Name) -> Address {
        Address::Server(name.clone())
    }
    pub fn kind(&self) -> ResourceKind {
        match self {
            Address::Server(_) => ResourceKind::Server,
            Address::Taskserv(..) => ResourceKind::Taskserv,
            Address::Cluster(_) => ResourceKind::Cluster,
            Address::Component(..) => ResourceKind::Component,
        }
    }
    /// The resource's own name (last segment).
    pub fn name(&self) -> &Name {
        match self {
            Address::Server(n) | Address::Cluster(n) => n,
            Address::Taskserv(_, n) | Address::Component(_, n) => n,
        }
    }
    /// The address this one is placed in: a taskserv's server, a component's cluster.
    pub fn parent(&self) -> Option<Address> {
        match self {
            Address::Taskserv(s, _) => Some(Address::Server(s.clone())),
            Address::Component(c, _) => Some(Address::Cluster(c.clone())),
            _ => None,
        }
    }
    /// Number of dot-separated segments an address of this kind has.
    pub fn segments(&self) -> usize {
        match self {
            Address::Server(_) | Address::Cluster(_) => 2,
            Address::Taskserv(..) | Address::Component(..) => 3,
        }
    }
}

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Address, String> {
        let parts: Vec<&str> = s.split('.').collect();
        let bad = || {
            format!(
                "invalid address {s:?}: expected server.NAME, taskserv.SERVER.NAME, cluster.NAME or cluster.NAME.COMPONENT"
            )
        };
        let name = |p: &str| Name::new(p).map_err(|e| format!("invalid address {s:?}: {e}"));
        match parts.as_slice() {
            ["server", n] => Ok(Address::Server(name(n)?)),
            ["taskserv", srv, n] => Ok(Address::Taskserv(name(srv)?, name(n)?)),
            ["cluster", n] => Ok(Address::Cluster(name(n)?)),
            ["cluster", c, n] => Ok(Address::Component(name(c)?, name(n)?)),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for Address {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}
impl From<Address> for String {
    fn from(a: Address) -> String {
        a.to_string()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Server(n) => write!(f, "server.{n}"),
            Address::Taskserv(s, n) => write!(f, "taskserv.{s}.{n}"),
            Address::Cluster(n) => write!(f, "cluster.{n}"),
            Address::Component(c, n) => write!(f, "cluster.{c}.{n}"),
        }
    }
}

/// The seed's lifecycle options, per resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    #[serde(default)]
    pub prevent_destroy: bool,
    #[serde(default)]
    pub create_before_destroy: bool,
    #[serde(default)]
    pub ignore_changes: Vec<String>,
}

/// One desired resource, as the configuration declares it.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub addr: Address,
    /// The provider, taskserv or cluster implementation that carries it out.
    pub implementation: String,
    /// Desired attributes as written; strings may hold `${...}` references. Shared with the
    /// plan's changes (each planned change carries it to apply) rather than copied.
    pub config: std::sync::Arc<serde_json::Value>,
    /// Everything this resource must come after: placement, `depends_on`, references.
    pub depends_on: Vec<Address>,
    pub lifecycle: Lifecycle,
    /// Where it was declared (`main.ncl:12:5`), when known.
    pub declared_at: Option<String>,
    /// Attribute paths whose values are secrets: redacted wherever they are shown.
    pub sensitive: Vec<String>,
    /// Attribute paths the configuration left to the schema's defaults (not written): a
    /// create's listing leaves them out.
    pub defaults: Vec<String>,
    /// The references of `config` by top-level attribute, as a plan shows them
    /// (`ResourceChange::references`): found once, when loading resolves them.
    pub references: References,
}

/// References by top-level attribute: each `${...}` as written, then the address it names.
pub type References = Vec<(String, Vec<String>)>;

impl Resource {
    pub fn kind(&self) -> ResourceKind {
        self.addr.kind()
    }
    /// "server.web-01 (declared at main.ncl:12:5)" for error messages.
    pub fn describe(&self) -> String {
        match &self.declared_at {
            Some(at) => format!("{} (declared at {at})", self.addr),
            None => self.addr.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_and_reject_garbage() {
        for s in [
            "server.web-01",
            "taskserv.web-01.redis",
            "cluster.bk",
            "cluster.bk.registry",
        ] {
            let a: Address = s.parse().unwrap();
            assert_eq!(a.to_string(), s);
        }
        assert_eq!(
            "taskserv.web-01.redis".parse::<Address>().unwrap().parent(),
            Some("server.web-01".parse().unwrap())
        );
        for s in [
            "server",
            "server.",
            "vm.x",
            "server.a.b",
            "server.-x",
            "server.a b",
            "taskserv.x",
        ] {
            assert!(s.parse::<Address>().is_err(), "{s} should be rejected");
        }
    }
}
