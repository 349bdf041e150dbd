//! Pure mappings between prov's server model and EC2: OS names → AMI searches, firewall rules ⇄
//! security-group permissions, instance states, and the shipped on-demand price table.

use aws_sdk_ec2::types::{InstanceStateName, IpPermission, IpRange, Ipv6Range};
use prov_engine::traits::{FirewallRule, Pricing, ServerStatus};

/// How an OS name is found: DescribeImages with this owner account and name pattern (newest
/// `CreationDate` wins), and the default SSH user of those images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OsImage {
    pub os: &'static str,
    pub owner: &'static str,
    pub name_pattern: &'static str,
    pub ssh_user: &'static str,
}

const CANONICAL: &str = "099720109477";
const DEBIAN: &str = "136693071363";
const AMAZON: &str = "137112412989";
const REDHAT: &str = "309956199498";

/// Supported OS names (x86_64 images). An `os` of the form `ami-...` is used as it is.
pub const OS_IMAGES: &[OsImage] = &[
    OsImage {
        os: "ubuntu-24.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-noble-24.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "ubuntu-22.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-jammy-22.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "ubuntu-20.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-focal-20.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "ubuntu-18.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-bionic-18.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "ubuntu-16.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-xenial-16.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "ubuntu-14.04",
        owner: CANONICAL,
        name_pattern: "ubuntu/images/hvm-ssd*/ubuntu-trusty-14.04-amd64-server-*",
        ssh_user: "ubuntu",
    },
    OsImage {
        os: "debian-12",
        owner: DEBIAN,
        name_pattern: "debian-12-amd64-*",
        ssh_user: "admin",
    },
    OsImage {
        os: "debian-11",
        owner: DEBIAN,
        name_pattern: "debian-11-amd64-*",
        ssh_user: "admin",
    },
    OsImage {
        os: "amazon-linux-2023",
        owner: AMAZON,
        name_pattern: "al2023-ami-2023.*-x86_64",
        ssh_user: "ec2-user",
    },
    OsImage {
        os: "amazon-linux-2022",
        owner: AMAZON,
        name_pattern: "al2022-ami-2022.*-x86_64",
        ssh_user: "ec2-user",
    },
    OsImage {
        os: "amazon-linux-2",
        owner: AMAZON,
        name_pattern: "amzn2-ami-hvm-*-x86_64-gp2",
        ssh_user: "ec2-user",
    },
    OsImage {
        os: "rhel-9",
        owner: REDHAT,
        name_pattern: "RHEL-9.*_HVM-*-x86_64-*",
        ssh_user: "ec2-user",
    },
    OsImage {
        os: "rhel-7",
        owner: REDHAT,
        name_pattern: "RHEL-7.*_HVM_GA-*-x86_64-*",
        ssh_user: "ec2-user",
    },
];

pub fn os_image(os: &str) -> Option<&'static OsImage> {
    OS_IMAGES.iter().find(|o| o.os == os)
}

/// Checks an OS name before any call: a known name or a literal AMI id.
pub fn check_os(os: &str) -> Result<(), String> {
    if os.starts_with("ami-") || os_image(os).is_some() {
        return Ok(());
    }
    Err(format!(
        "unknown os {os:?} (known: {}, or an AMI id like \"ami-0abc...\")",
        OS_IMAGES
            .iter()
            .map(|o| o.os)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The default SSH user for an OS name (`ec2-user` for literal AMIs).
pub fn ssh_user(os: &str) -> &'static str {
    os_image(os).map(|o| o.ssh_user).unwrap_or("ec2-user")
}

pub fn status(state: Option<&InstanceStateName>) -> ServerStatus {
    match state {
        Some(InstanceStateName::Pending) => ServerStatus::Creating,
        Some(InstanceStateName::Running) => ServerStatus::Running,
        Some(InstanceStateName::Stopping) | Some(InstanceStateName::Stopped) => {
            ServerStatus::Stopped
        }
        _ => ServerStatus::Unknown,
    }
}

/// Marks a permission range created by prov: `prov:INDEX` plus `:any-port` / `:any-addr` when
/// the rule left the port / address out, so rules read back exactly as configured and in order.
fn description(index: usize, any_port: bool, any_addr: bool) -> String {
    let mut d = format!("prov:{index}");
    if any_port {
        d.push_str(":any-port");
    }
    if any_addr {
        d.push_str(":any-addr");
    }
    d
}

/// Checks rules client-side, before any call: security groups only allow, addresses are CIDRs.
pub fn check_rules(rules: &[FirewallRule]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        let bad = |m: String| Err(format!("firewall_rules[{i}]: {m}"));
        if !matches!(r.direction.as_str(), "ingress" | "egress") {
            return bad(format!(
                "invalid direction {:?} (ingress, egress)",
                r.direction
            ));
        }
        if !matches!(r.protocol.as_str(), "tcp" | "udp" | "icmp") {
            return bad(format!(
                "invalid protocol {:?} (tcp, udp, icmp)",
                r.protocol
            ));
        }
        if r.action != "allow" {
            return bad(format!(
                "action {:?}: AWS security groups only allow traffic; leave out what should be denied",
                r.action
            ));
        }
        if let Some(p) = &r.port {
            if r.protocol == "icmp" {
                return bad("icmp rules take no port".into());
            }
            if port_range(p).is_none() {
                return bad(format!(
                    "invalid port {p:?} (a port like \"22\" or a range like \"8000-8100\")"
                ));
            }
        }
        let addr = if r.direction == "ingress" {
            &r.source
        } else {
            &r.destination
        };
        if let Some(a) = addr {
            if !a.contains('/') || a.parse::<std::net::IpAddr>().is_ok() {
                return bad(format!(
                    "address {a:?} must be a CIDR block like \"10.0.0.0/8\" or \"203.0.113.7/32\""
                ));
            }
        }
    }
    Ok(())
}

fn port_range(p: &str) -> Option<(i32, i32)> {
    let parts: Vec<Option<u16>> = p.split('-').map(|x| x.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(a)] => Some((*a as i32, *a as i32)),
        [Some(a), Some(b)] if a <= b => Some((*a as i32, *b as i32)),
        _ => None,
    }
}

/// Ingress and egress permissions for `rules` (already checked), one permission per rule.
pub fn permissions(rules: &[FirewallRule]) -> (Vec<IpPermission>, Vec<IpPermission>) {
    let mut ingress = Vec::new();
    let mut egress = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let (from, to) = match (&r.port, r.protocol.as_str()) {
            (_, "icmp") => (-1, -1),
            (Some(p), _) => port_range(p).unwrap_or((0, 65535)),
            (None, _) => (0, 65535),
        };
        let addr = if r.direction == "ingress" {
            r.source.as_deref()
        } else {
            r.destination.as_deref()
        };
        let desc = description(i, r.port.is_none() && r.protocol != "icmp", addr.is_none());
        let mut p = IpPermission::builder()
            .ip_protocol(r.protocol.clone())
            .from_port(from)
            .to_port(to);
        match addr {
            Some(a) if a.contains(':') => {
                p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(a).description(desc).build())
            }
            Some(a) => p = p.ip_ranges(IpRange::builder().cidr_ip(a).description(desc).build()),
            None => {
                p = p.ip_ranges(
                    IpRange::builder()
                        .cidr_ip("0.0.0.0/0")
                        .description(desc)
                        .build(),
                )
            }
        }
        if r.direction == "ingress" {
            ingress.push(p.build());
        } else {
            egress.push(p.build());
        }
    }
    (ingress, egress)
}

/// Reads rules back from a security group's permissions: ranges prov created come back in their
/// configured order and shape; others (made outside prov) follow, described as they are.
pub fn rules_from(ingress: &[IpPermission], egress: &[IpPermission]) -> Vec<FirewallRule> {
    let mut indexed: Vec<(usize, FirewallRule)> = Vec::new();
    let mut foreign: Vec<FirewallRule> = Vec::new();
    for (direction, perms) in [("ingress", ingress), ("egress", egress)] {
        for p in perms {
            let proto = match p.ip_protocol().unwrap_or("-1") {
                "-1" => "all".to_string(),
                "6" => "tcp".to_string(),
                "17" => "udp".to_string(),
                "1" => "icmp".to_string(),
                other => other.to_string(),
            };
            let ranges: Vec<(Option<&str>, Option<&str>)> = p
                .ip_ranges()
                .iter()
                .map(|r| (r.cidr_ip(), r.description()))
                .chain(
                    p.ipv6_ranges()
                        .iter()
                        .map(|r| (r.cidr_ipv6(), r.description())),
                )
                .collect();
            for (cidr, desc) in ranges {
                let parsed = desc.and_then(parse_description);
                let (any_port, any_addr) = parsed.map(|(_, p, a)| (p, a)).unwrap_or((false, false));
                let port = match (p.from_port(), p.to_port()) {
                    _ if proto == "icmp" || proto == "all" => None,
                    _ if any_port => None,
                    (Some(a), Some(b)) if a == b => Some(a.to_string()),
                    (Some(a), Some(b)) => Some(format!("{a}-{b}")),
                    _ => None,
                };
                let addr = if any_addr {
                    None
                } else {
                    cidr.map(str::to_string)
                };
                let rule = FirewallRule {
                    direction: direction.to_string(),
                    protocol: proto.clone(),
                    port,
                    source: if direction == "ingress" {
                        addr.clone()
                    } else {
                        None
                    },
                    destination: if direction == "egress" { addr } else { None },
                    action: "allow".to_string(),
                };
                match parsed {
                    Some((i, _, _)) => indexed.push((i, rule)),
                    None => foreign.push(rule),
                }
            }
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    indexed.into_iter().map(|(_, r)| r).chain(foreign).collect()
}

fn parse_description(d: &str) -> Option<(usize, bool, bool)> {
    let rest = d.strip_prefix("prov:")?;
    let mut parts = rest.split(':');
    let i: usize = parts.next()?.parse().ok()?;
    let mut any_port = false;
    let mut any_addr = false;
    for p in parts {
        match p {
            "any-port" => any_port = true,
            "any-addr" => any_addr = true,
            _ => return None,
        }
    }
    Some((i, any_port, any_addr))
}

/// Source of the price table below: the AWS EC2 On-Demand pricing page
/// (https://aws.amazon.com/ec2/pricing/on-demand/), region US East (N. Virginia) `us-east-1`,
/// Linux/UNIX, USD per hour, as listed in 2024 (table date 2024-06). Prices change and differ per
/// region: this is an estimate for planning, not a bill. Monthly = hourly × 730 hours.
pub const PRICE_TABLE_SOURCE: &str =
    "AWS EC2 On-Demand pricing, us-east-1, Linux/UNIX, USD, table date 2024-06";
pub const PRICE_REGION: &str = "us-east-1";
/// Burstable sizes, listed one by one (their prices are not proportional to the vCPUs).
pub const PRICES: &[(&str, f64)] = &[
    ("t2.nano", 0.0058),
    ("t2.micro", 0.0116),
    ("t2.small", 0.023),
    ("t2.medium", 0.0464),
    ("t2.large", 0.0928),
    ("t2.xlarge", 0.1856),
    ("t2.2xlarge", 0.3712),
    ("t3.nano", 0.0052),
    ("t3.micro", 0.0104),
    ("t3.small", 0.0208),
    ("t3.medium", 0.0416),
    ("t3.large", 0.0832),
    ("t3.xlarge", 0.1664),
    ("t3.2xlarge", 0.3328),
    ("t3a.nano", 0.0047),
    ("t3a.micro", 0.0094),
    ("t3a.small", 0.0188),
    ("t3a.medium", 0.0376),
    ("t3a.large", 0.0752),
    ("t3a.xlarge", 0.1504),
    ("t3a.2xlarge", 0.3008),
    ("t4g.nano", 0.0042),
    ("t4g.micro", 0.0084),
    ("t4g.small", 0.0168),
    ("t4g.medium", 0.0336),
    ("t4g.large", 0.0672),
    ("t4g.xlarge", 0.1344),
    ("t4g.2xlarge", 0.2688),
];

/// General-purpose, compute- and memory-optimised families, priced in proportion to their
/// vCPUs: (family, the `large` size's hourly price, the sizes the family has). `xlarge` is twice
/// `large`, `Nxlarge` 2N times.
pub const FAMILIES: &[(&str, f64, &[&str])] = &[
    (
        "m5",
        0.096,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
        ],
    ),
    (
        "m6i",
        0.096,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "32xlarge",
        ],
    ),
    (
        "m7i",
        0.1008,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "48xlarge",
        ],
    ),
    (
        "c5",
        0.085,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "9xlarge", "12xlarge", "18xlarge", "24xlarge",
        ],
    ),
    (
        "c6i",
        0.085,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "32xlarge",
        ],
    ),
    (
        "r5",
        0.126,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
        ],
    ),
    (
        "r6i",
        0.126,
        &[
            "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge",
            "32xlarge",
        ],
    ),
];

/// How many `large` sizes one size is (`xlarge` 2, `4xlarge` 8).
fn size_factor(size: &str) -> Option<f64> {
    match size {
        "large" => Some(1.0),
        "xlarge" => Some(2.0),
        s => s
            .strip_suffix("xlarge")?
            .parse::<u32>()
            .ok()
            .map(|n| 2.0 * f64::from(n)),
    }
}

/// Every instance type of the table with its hourly price.
pub fn price_table() -> Vec<(String, f64)> {
    let mut out: Vec<(String, f64)> = PRICES.iter().map(|(t, h)| (t.to_string(), *h)).collect();
    for (family, large, sizes) in FAMILIES {
        for size in *sizes {
            let f = size_factor(size).expect("table sizes are large, xlarge or Nxlarge");
            out.push((
                format!("{family}.{size}"),
                (large * f * 10_000.0).round() / 10_000.0,
            ));
        }
    }
    out
}

pub fn pricing() -> Vec<Pricing> {
    price_table()
        .into_iter()
        .map(|(plan, hourly)| Pricing {
            plan,
            zone: Some(PRICE_REGION.to_string()),
            hourly,
            monthly: (hourly * 730.0 * 100.0).round() / 100.0,
            currency: "USD".to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn price_table_sizes_scale_with_vcpus() {
        let t: std::collections::HashMap<String, f64> = price_table().into_iter().collect();
        assert_eq!(t["m5.large"], 0.096);
        assert_eq!(t["m5.4xlarge"], 0.768);
        assert_eq!(t["c5.9xlarge"], 1.53);
        assert_eq!(t["r6i.32xlarge"], 8.064);
        assert_eq!(t["t3.micro"], 0.0104);
        assert_eq!(
            t.len(),
            PRICES.len() + FAMILIES.iter().map(|f| f.2.len()).sum::<usize>()
        );
    }

    fn rule(dir: &str, proto: &str, port: Option<&str>, addr: Option<&str>) -> FirewallRule {
        FirewallRule {
            direction: dir.into(),
            protocol: proto.into(),
            port: port.map(Into::into),
            source: if dir == "ingress" {
                addr.map(Into::into)
            } else {
                None
            },
            destination: if dir == "egress" {
                addr.map(Into::into)
            } else {
                None
            },
            action: "allow".into(),
        }
    }

    #[test]
    fn rules_round_trip_through_permissions_in_order() {
        let rules = vec![
            rule("ingress", "tcp", Some("443"), None),
            rule("ingress", "tcp", Some("22"), Some("10.0.0.0/8")),
            rule("ingress", "udp", Some("8000-8100"), Some("2001:db8::/32")),
            rule("ingress", "icmp", None, None),
            rule("egress", "tcp", None, None),
        ];
        check_rules(&rules).unwrap();
        let (mut i, e) = permissions(&rules);
        i.reverse(); // the cloud keeps no order
        assert_eq!(rules_from(&i, &e), rules);
    }

    #[test]
    fn deny_and_bare_addresses_are_refused() {
        let mut r = rule("ingress", "tcp", Some("22"), None);
        r.action = "deny".into();
        assert!(check_rules(&[r]).unwrap_err().contains("only allow"));
        let r = rule("ingress", "tcp", Some("22"), Some("10.0.0.1"));
        assert!(check_rules(&[r]).unwrap_err().contains("CIDR"));
    }

    #[test]
    fn os_names_map_to_owners_and_users() {
        assert!(check_os("ubuntu-22.04").is_ok());
        assert!(check_os("ami-0123").is_ok());
        assert!(check_os("windows-95").unwrap_err().contains("ubuntu-24.04"));
        assert_eq!(ssh_user("debian-12"), "admin");
        assert_eq!(os_image("amazon-linux-2").unwrap().owner, "137112412989");
    }
}
