//! Firewall rules → an nftables rule set for a sandbox's network namespace.
//!
//! Semantics (documented in docs/providers/local.md): rules of one direction are matched in
//! order, first match wins; `deny` rejects (TCP reset, ICMP unreachable otherwise) so a client
//! sees "connection refused" at once. A direction with at least one `allow` rule is an allow
//! list: what no rule matches is rejected. A direction with only `deny` rules (or none) accepts
//! the rest. Loopback and replies to established connections always pass, and so does SSH from
//! the host's bridge address: prov manages the server through it.

use prov_engine::traits::FirewallRule;
use std::net::{IpAddr, Ipv4Addr};

/// The table prov owns inside each namespace.
pub const TABLE: &str = "prov_fw";

/// A port like "22" or a range like "8000-8100".
fn port_expr(port: &str) -> Option<String> {
    let parts: Vec<Option<u16>> = port.split('-').map(|p| p.trim().parse().ok()).collect();
    match parts.as_slice() {
        [Some(a)] if *a > 0 => Some(a.to_string()),
        [Some(a), Some(b)] if *a > 0 && a <= b => Some(format!("{a}-{b}")),
        _ => None,
    }
}

/// An address or CIDR: `("ip" | "ip6", text)`.
fn addr_expr(s: &str) -> Option<(&'static str, String)> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip.trim().parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if let Some(len) = len {
        let n: u8 = len.trim().parse().ok()?;
        if n > max {
            return None;
        }
        // nft refuses host bits in a prefix; normalise 10.0.0.5/8 to the network it names.
        if let IpAddr::V4(v4) = ip {
            let mask = if n == 0 { 0 } else { u32::MAX << (32 - n) };
            return Some((
                "ip",
                format!("{}/{n}", Ipv4Addr::from(u32::from(v4) & mask)),
            ));
        }
        return Some(("ip6", format!("{ip}/{n}")));
    }
    Some((if ip.is_ipv4() { "ip" } else { "ip6" }, ip.to_string()))
}

/// Checks rules; every message names the rule's index and field.
pub fn check(rules: &[FirewallRule]) -> Vec<String> {
    let mut errs = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let mut bad = |field: &str, value: &str, valid: &str| {
            errs.push(format!(
                "firewall_rules[{i}].{field}: invalid value {value:?} (valid: {valid})"
            ))
        };
        if !matches!(r.direction.as_str(), "ingress" | "egress") {
            bad("direction", &r.direction, "ingress, egress");
        }
        if !matches!(r.protocol.as_str(), "tcp" | "udp" | "icmp") {
            bad("protocol", &r.protocol, "tcp, udp, icmp");
        }
        if !matches!(r.action.as_str(), "allow" | "deny") {
            bad("action", &r.action, "allow, deny");
        }
        if let Some(port) = &r.port {
            if r.protocol == "icmp" {
                bad("port", port, "no port with protocol icmp");
            } else if port_expr(port).is_none() {
                bad(
                    "port",
                    port,
                    "a port like \"22\" or a range like \"8000-8100\"",
                );
            }
        }
        for (field, v) in [("source", &r.source), ("destination", &r.destination)] {
            if let Some(v) = v {
                if addr_expr(v).is_none() {
                    bad(field, v, "an IP address or CIDR like \"10.0.0.0/8\"");
                }
            }
        }
    }
    errs
}

fn rule_line(r: &FirewallRule) -> String {
    let mut m = Vec::new();
    if let Some((fam, a)) = r.source.as_deref().and_then(addr_expr) {
        m.push(format!("{fam} saddr {a}"));
    }
    if let Some((fam, a)) = r.destination.as_deref().and_then(addr_expr) {
        m.push(format!("{fam} daddr {a}"));
    }
    match r.protocol.as_str() {
        "icmp" => m.push("meta l4proto { icmp, ipv6-icmp }".to_string()),
        p => match r.port.as_deref().and_then(port_expr) {
            Some(port) => m.push(format!("{p} dport {port}")),
            None => m.push(format!("meta l4proto {p}")),
        },
    }
    let verdict = match (r.action.as_str(), r.protocol.as_str()) {
        ("allow", _) => "accept",
        (_, "tcp") => "reject with tcp reset",
        (_, "udp") => "reject",
        _ => "drop",
    };
    format!("    {} {verdict}", m.join(" "))
}

/// The whole rule set, replacing the previous one atomically when loaded with `nft -f`.
/// `gateway` is the host's bridge address (prov's SSH always passes from it).
pub fn render(rules: &[FirewallRule], gateway: Ipv4Addr) -> String {
    let mut out = format!("table inet {TABLE}\ndelete table inet {TABLE}\ntable inet {TABLE} {{\n");
    for (chain, hook, dir, lo) in [
        ("input", "input", "ingress", "iif"),
        ("output", "output", "egress", "oif"),
    ] {
        out.push_str(&format!(
            "  chain {chain} {{\n    type filter hook {hook} priority 0; policy accept;\n    \
             {lo} \"lo\" accept\n    ct state established,related accept\n"
        ));
        if dir == "ingress" {
            out.push_str(&format!("    ip saddr {gateway} tcp dport 22 accept\n"));
        }
        let mine: Vec<&FirewallRule> = rules.iter().filter(|r| r.direction == dir).collect();
        for r in &mine {
            out.push_str(&rule_line(r));
            out.push('\n');
        }
        if mine.iter().any(|r| r.action == "allow") {
            out.push_str("    meta l4proto tcp reject with tcp reset\n    reject\n");
        }
        out.push_str("  }\n");
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(direction: &str, protocol: &str, port: Option<&str>, action: &str) -> FirewallRule {
        FirewallRule {
            direction: direction.into(),
            protocol: protocol.into(),
            port: port.map(str::to_string),
            source: None,
            destination: None,
            action: action.into(),
        }
    }

    #[test]
    fn render_allow_list_and_denies() {
        let mut r1 = rule("ingress", "tcp", Some("8080"), "allow");
        r1.source = Some("10.0.0.5/8".into());
        let rules = vec![
            r1,
            rule("ingress", "udp", Some("53"), "deny"),
            rule("egress", "tcp", Some("25"), "deny"),
        ];
        let text = render(&rules, Ipv4Addr::new(10, 213, 0, 1));
        assert!(
            text.contains("ip saddr 10.0.0.0/8 tcp dport 8080 accept"),
            "{text}"
        );
        assert!(text.contains("udp dport 53 reject"), "{text}");
        assert!(
            text.contains("tcp dport 25 reject with tcp reset"),
            "{text}"
        );
        // Only ingress has an allow rule: only the input chain ends in a reject.
        assert_eq!(text.matches("    reject\n").count(), 1, "{text}");
    }

    #[test]
    fn check_names_index_and_field() {
        let mut bad = rule("inbound", "tcp", Some("99999"), "allow");
        bad.source = Some("not-an-ip".into());
        let errs = check(&[rule("ingress", "icmp", None, "deny"), bad]);
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("firewall_rules[1].direction"));
        assert!(errs.iter().any(|e| e.contains("firewall_rules[1].port")));
        assert!(errs.iter().any(|e| e.contains("firewall_rules[1].source")));
        assert!(!check(&[rule("ingress", "icmp", Some("1"), "allow")]).is_empty());
    }
}
