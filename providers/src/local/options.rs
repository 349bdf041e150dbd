//! The local provider's settings, `providers.local = { ... }`, checked before any call.
//!
//! | key           | type                          | meaning                                              |
//! |---------------|-------------------------------|------------------------------------------------------|
//! | `isolation`   | `"netns"`, `"none"`, `"auto"` | netns: own network namespace, address, sshd and nftables firewall (root only); none: a directory and local processes; auto (default): netns when prov runs as root, none otherwise |
//! | `subnet`      | IPv4 CIDR, prefix 8..=28      | addresses of netns sandboxes (default `10.213.0.0/16`); the first host address is the bridge's |
//! | `bridge`      | interface name (≤ 15 chars)   | the host bridge the sandboxes' veth pairs join (default `provbr0`) |
//! | `sshd`        | path                          | the OpenSSH server binary (default `/usr/sbin/sshd`) |
//! | `parallelism` | integer ≥ 1                   | `Provider::parallelism()`: calls to this provider at once |
//!
//! The common provider keys (`defaults`, `auth`, `api`, `features`) are accepted; any other key
//! is an error naming it, so a typo (`isolaton`) is never silently ignored.

use serde_json::Value;
use std::net::Ipv4Addr;

pub const DEFAULT_SUBNET: &str = "10.213.0.0/16";
pub const DEFAULT_BRIDGE: &str = "provbr0";
pub const DEFAULT_SSHD: &str = "/usr/sbin/sshd";

const OWN_KEYS: &[&str] = &["isolation", "subnet", "bridge", "sshd", "parallelism"];
const COMMON_KEYS: &[&str] = &["defaults", "auth", "api", "features"];

/// What a sandbox is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Own network namespace, veth on the host bridge, sshd on its address, nftables firewall.
    Netns,
    /// A directory and local processes; no firewall.
    None,
}

impl Isolation {
    pub fn as_str(self) -> &'static str {
        match self {
            Isolation::Netns => "netns",
            Isolation::None => "none",
        }
    }
}

/// An IPv4 network: base address and prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    pub fn parse(s: &str) -> Result<Subnet, String> {
        let (ip, len) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a CIDR like \"10.213.0.0/16\""))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| (8..=28).contains(p))
            .ok_or_else(|| format!("{s:?}: the prefix length must be 8..=28"))?;
        let mask = u32::MAX << (32 - prefix);
        if u32::from(ip) & !mask != 0 {
            return Err(format!(
                "{s:?} has host bits set (the network is {}/{prefix})",
                Ipv4Addr::from(u32::from(ip) & mask)
            ));
        }
        Ok(Subnet { base: ip, prefix })
    }
    fn size(&self) -> u32 {
        1u32 << (32 - self.prefix)
    }
    /// The bridge's (gateway's) address: the first host address.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + 1)
    }
    /// Addresses sandboxes may get: after the gateway, before the broadcast address.
    pub fn hosts(&self) -> impl Iterator<Item = Ipv4Addr> {
        let base = u32::from(self.base);
        (2..self.size() - 1).map(move |i| Ipv4Addr::from(base + i))
    }
}

impl std::fmt::Display for Subnet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    pub isolation: Isolation,
    pub subnet: Subnet,
    pub bridge: String,
    pub sshd: String,
    pub parallelism: Option<usize>,
}

/// Whether this process runs as root (the netns mode needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A Linux interface name: 1..=15 bytes of letters, digits, `-`, `_`.
pub fn valid_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses the settings; every problem is reported, each naming its key. `root` decides what
/// `isolation = "auto"` means and whether `"netns"` is possible.
pub fn parse(name: &str, settings: &Value, root: bool) -> Result<LocalOptions, Vec<String>> {
    let empty = serde_json::Map::new();
    let map = match settings {
        Value::Object(m) => m,
        Value::Null => &empty,
        other => {
            return Err(vec![format!(
                "providers.{name} must be a record, got {other}"
            )])
        }
    };
    let mut errors = Vec::new();
    for k in map.keys() {
        if !OWN_KEYS.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str()) {
            errors.push(format!(
                "providers.{name}.{k}: unknown setting (known: {})",
                OWN_KEYS.join(", ")
            ));
        }
    }
    let get = |k: &str| map.get(k).filter(|v| !v.is_null());
    let string = |k: &str, errors: &mut Vec<String>| -> Option<String> {
        match get(k) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => {
                errors.push(format!("providers.{name}.{k} must be a string, got {v}"));
                None
            }
        }
    };

    let isolation = match string("isolation", &mut errors).as_deref() {
        None | Some("auto") => {
            if root {
                Isolation::Netns
            } else {
                Isolation::None
            }
        }
        Some("none") => Isolation::None,
        Some("netns") => {
            if !root {
                errors.push(format!(
                    "providers.{name}.isolation = \"netns\" needs root (network namespaces, veth \
                     pairs and nftables need CAP_NET_ADMIN); run prov as root or use \
                     isolation = \"none\""
                ));
            }
            Isolation::Netns
        }
        Some(other) => {
            errors.push(format!(
                "providers.{name}.isolation: {other:?} is not one of \"netns\", \"none\", \"auto\""
            ));
            Isolation::None
        }
    };

    let subnet = match string("subnet", &mut errors) {
        None => Subnet::parse(DEFAULT_SUBNET).expect("the default subnet parses"),
        Some(s) => Subnet::parse(&s).unwrap_or_else(|e| {
            errors.push(format!("providers.{name}.subnet: {e}"));
            Subnet::parse(DEFAULT_SUBNET).expect("the default subnet parses")
        }),
    };

    let bridge = string("bridge", &mut errors).unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
    if !valid_ifname(&bridge) {
        errors.push(format!(
            "providers.{name}.bridge: {bridge:?} is not an interface name (1-15 letters, digits, '-', '_')"
        ));
    }

    let sshd = string("sshd", &mut errors).unwrap_or_else(|| DEFAULT_SSHD.to_string());
    if !sshd.starts_with('/') {
        errors.push(format!(
            "providers.{name}.sshd must be an absolute path (sshd refuses to re-execute otherwise), got {sshd:?}"
        ));
    }

    let parallelism = match get("parallelism") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(f) if f >= 1.0 && f.fract() == 0.0 && f <= 1e6 => Some(f as usize),
            _ => {
                errors.push(format!(
                    "providers.{name}.parallelism must be a positive integer, got {v}"
                ));
                None
            }
        },
    };

    if errors.is_empty() {
        Ok(LocalOptions {
            isolation,
            subnet,
            bridge,
            sshd,
            parallelism,
        })
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_root() {
        let o = parse("local", &json!({}), true).unwrap();
        assert_eq!(o.isolation, Isolation::Netns);
        assert_eq!(o.subnet.to_string(), DEFAULT_SUBNET);
        assert_eq!(o.bridge, DEFAULT_BRIDGE);
        assert_eq!(
            parse("local", &Value::Null, false).unwrap().isolation,
            Isolation::None
        );
        let o = parse(
            "local",
            &json!({"isolation": "none", "parallelism": 2.0,
                                        "defaults": {"plan": "small"}}),
            true,
        )
        .unwrap();
        assert_eq!(o.isolation, Isolation::None);
        assert_eq!(o.parallelism, Some(2));
    }

    #[test]
    fn every_problem_names_its_key() {
        let errs = parse(
            "local",
            &json!({"isolaton": "none", "isolation": "vm", "subnet": "10.213.0.1/16",
                    "bridge": "a-very-long-bridge-name", "sshd": "sshd", "parallelism": 0}),
            true,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 6, "{errs:?}");
        for key in [
            "isolaton",
            "isolation",
            "subnet",
            "bridge",
            "sshd",
            "parallelism",
        ] {
            assert!(
                errs.iter()
                    .any(|e| e.contains(&format!("providers.local.{key}"))),
                "{key}: {errs:?}"
            );
        }
        let errs = parse("local", &json!({"isolation": "netns"}), false).unwrap_err();
        assert!(errs[0].contains("needs root"), "{errs:?}");
    }

    #[test]
    fn subnet_hosts() {
        let s = Subnet::parse("10.213.0.0/28").unwrap();
        assert_eq!(s.gateway(), Ipv4Addr::new(10, 213, 0, 1));
        let hosts: Vec<_> = s.hosts().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(10, 213, 0, 2)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(10, 213, 0, 14)));
        assert!(Subnet::parse("10.0.0.0/30").is_err());
        assert!(Subnet::parse("fd00::/64").is_err());
    }
}
