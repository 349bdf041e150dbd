//! The local provider's settings, `providers.local = { ... }`. The keys, types, defaults and
//! constraints are declared once, in the Nickel schema `providers/src/local/settings.ncl`
//! ([`SCHEMA`], compiled in); prov checks the settings against it (every problem at once, each
//! naming `providers.local.KEY`) and this module reads the checked value.
//!
//! | key           | type                          | meaning                                              |
//! |---------------|-------------------------------|------------------------------------------------------|
//! | `isolation`   | `"netns"`, `"none"`, `"auto"` | netns: own network namespace, address, sshd and nftables firewall (root only); none: a directory and local processes; auto (default): netns when prov runs as root, none otherwise |
//! | `subnet`      | IPv4 CIDR, prefix 8..=28      | addresses of netns sandboxes (default `10.213.0.0/16`); the first host address is the bridge's |
//! | `bridge`      | interface name (≤ 15 chars)   | the host bridge the sandboxes' veth pairs join (default `provbr0`) |
//! | `sshd`        | absolute path                 | the OpenSSH server binary (default `/usr/sbin/sshd`) |
//! | `parallelism` | integer ≥ 1                   | `Provider::parallelism()`: calls to this provider at once |
//! | `auth`, `api`, `defaults`, `features` | records | the common provider settings (`defaults` is read by the engine; `auth` is not used) |
//!
//! Any other key is an error naming it, so a typo (`isolaton`) is never silently ignored.
//! `isolation = "netns"` without root is refused here: whether prov runs as root is known only
//! when it runs.

use prov_engine::config::SettingsSchema;
use serde::Deserialize;
use serde_json::Value;
use std::net::Ipv4Addr;

/// The schema of `providers.local`.
pub const SCHEMA: SettingsSchema = SettingsSchema::Embedded {
    name: "providers/src/local/settings.ncl",
    source: include_str!("settings.ncl"),
};

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

/// The checked settings, as the schema shapes them.
#[derive(Deserialize)]
struct Checked {
    isolation: String,
    subnet: String,
    bridge: String,
    sshd: String,
    parallelism: Option<usize>,
}

/// Checks the settings against [`SCHEMA`]; every problem is reported, each naming its key.
/// `root` decides what `isolation = "auto"` means and whether `"netns"` is possible.
pub fn parse(name: &str, settings: &Value, root: bool) -> Result<LocalOptions, Vec<String>> {
    let c: Checked = crate::settings::read(name, &SCHEMA, settings)?;
    let isolation = match c.isolation.as_str() {
        "none" => Isolation::None,
        "netns" if !root => {
            return Err(vec![format!(
                "providers.{name}.isolation = \"netns\" needs root (network namespaces, veth \
                 pairs and nftables need CAP_NET_ADMIN); run prov as root or use \
                 isolation = \"none\""
            )])
        }
        "netns" => Isolation::Netns,
        _ if root => Isolation::Netns,
        _ => Isolation::None,
    };
    let subnet =
        Subnet::parse(&c.subnet).map_err(|e| vec![format!("providers.{name}.subnet: {e}")])?;
    Ok(LocalOptions {
        isolation,
        subnet,
        bridge: c.bridge,
        sshd: c.sshd,
        parallelism: c.parallelism,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_root() {
        let o = parse("local", &json!({}), true).unwrap();
        assert_eq!(o.isolation, Isolation::Netns);
        // The schema's defaults.
        assert_eq!(o.subnet.to_string(), "10.213.0.0/16");
        assert_eq!(
            (o.bridge.as_str(), o.sshd.as_str()),
            ("provbr0", "/usr/sbin/sshd")
        );
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

    /// Each case: settings, then the `providers.local.KEY` each problem names.
    #[test]
    fn every_problem_names_its_key() {
        let cases: &[(Value, &[&str])] = &[
            (json!({"isolation": "vm"}), &["isolation"]),
            (json!({"isolation": 1}), &["isolation"]),
            (json!({"subnet": "10.213.0.1/16"}), &["subnet"]),
            (json!({"subnet": "10.213.0.0/30"}), &["subnet"]),
            (json!({"subnet": "fd00::/64"}), &["subnet"]),
            (json!({"subnet": 16}), &["subnet"]),
            (json!({"bridge": "a-very-long-bridge-name"}), &["bridge"]),
            (json!({"sshd": "sshd"}), &["sshd"]),
            (json!({"parallelism": 0}), &["parallelism"]),
            (json!({"isolaton": "none"}), &["isolaton"]),
            (
                json!({"isolaton": "none", "isolation": "vm", "subnet": "10.213.0.1/16",
                       "bridge": "a-very-long-bridge-name", "sshd": "sshd", "parallelism": 0}),
                &[
                    "bridge",
                    "isolation",
                    "isolaton",
                    "parallelism",
                    "sshd",
                    "subnet",
                ],
            ),
        ];
        for (settings, keys) in cases {
            let errs = parse("local", settings, true).unwrap_err();
            assert_eq!(errs.len(), keys.len(), "{settings}: {errs:#?}");
            for (e, k) in errs.iter().zip(keys.iter()) {
                assert!(e.starts_with(&format!("providers.local.{k}: ")), "{k}: {e}");
            }
        }
        let errs = parse("local", &json!({"subnet": "10.213.0.1/16"}), true).unwrap_err();
        assert!(
            errs[0].contains("host bits set (the network is 10.213.0.0/16)"),
            "{errs:?}"
        );
        let errs = parse("local", &json!({"isolaton": "none"}), true).unwrap_err();
        assert!(errs[0].contains("unknown setting"), "{errs:?}");
        let errs = parse("local", &json!({"isolation": "netns"}), false).unwrap_err();
        assert!(errs[0].contains("needs root"), "{errs:?}");
    }

    #[test]
    fn a_wrong_credential_is_not_echoed() {
        for auth in [json!("hunter22-secret"), json!(424242424242u64)] {
            let errs = parse("local", &json!({"auth": auth}), true).unwrap_err();
            let all = errs.join("\n");
            assert!(all.starts_with("providers.local.auth: "), "{all}");
            assert!(
                !all.contains("hunter22") && !all.contains("424242"),
                "{all}"
            );
        }
    }

    #[test]
    fn the_key_table_is_the_schema() {
        use crate::settings::testing::{schema_keys, table_keys};
        assert_eq!(table_keys(include_str!("options.rs")), schema_keys(&SCHEMA));
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
