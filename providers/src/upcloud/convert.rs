//! Translations between prov's provider types and UpCloud API 1.3 JSON: the server create body,
//! server details, labels (ownership tags), firewall rules, plans, zones and prices.
//!
//! UpCloud label keys allow letters, digits, `_` and `-` only, so prov's `prov:NAME` tags travel
//! as `prov_NAME` labels and are turned back on the way in. The configured `os` is kept in the
//! `prov_os` label: a server does not remember which template its disk was cloned from.

use prov_engine::traits::{
    FirewallRule, Ownership, PlanInfo, Pricing, ServerInfo, ServerSpec, ServerStatus, Zone,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Hours UpCloud bills per month at most: the monthly price is hourly * 672.
pub const HOURS_PER_MONTH: f64 = 672.0;

/// A number that UpCloud may send as a JSON number or a string ("1").
pub fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn s(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `{"x": {"y": [..]}}` → the list (UpCloud wraps every list twice).
pub fn list<'a>(v: &'a Value, outer: &str, inner: &str) -> &'a [Value] {
    v.get(outer)
        .and_then(|o| o.get(inner))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// prov tag key → UpCloud label key.
pub fn label_key(tag: &str) -> String {
    match tag.strip_prefix("prov:") {
        Some(rest) => format!("prov_{rest}"),
        None => tag.to_string(),
    }
}

/// UpCloud label key → prov tag key.
pub fn tag_key(label: &str) -> String {
    match label.strip_prefix("prov_") {
        Some(rest) => format!("prov:{rest}"),
        None => label.to_string(),
    }
}

/// Checks a user tag is expressible as an UpCloud label.
pub fn check_tag(key: &str, value: &str) -> Result<(), String> {
    let ok = !key.is_empty()
        && key.len() <= 32
        && !key.starts_with('_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !ok {
        return Err(format!(
            "tag {key:?}: UpCloud label keys are 1-32 letters, digits, '_' or '-' (not starting with '_')"
        ));
    }
    if key.starts_with("prov_") {
        return Err(format!(
            "tag {key:?}: keys starting with prov_ are reserved for prov's ownership labels"
        ));
    }
    if value.len() > 255 {
        return Err(format!(
            "tag {key:?}: UpCloud label values are at most 255 characters"
        ));
    }
    Ok(())
}

/// The labels of a server: its tags, the ownership tags and the configured OS.
pub fn labels(tags: &BTreeMap<String, String>, prov_tags: &BTreeMap<String, String>) -> Value {
    let items: Vec<Value> = tags
        .iter()
        .chain(prov_tags.iter())
        .map(|(k, v)| json!({"key": label_key(k), "value": v}))
        .collect();
    json!({ "label": items })
}

/// The `prov:*` tags a server carries: ownership plus the configured OS.
pub fn prov_tags(owner: &Ownership, os: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            prov_engine::traits::Ownership::TAG_WORKSPACE.to_string(),
            owner.workspace.clone(),
        ),
        (
            prov_engine::traits::Ownership::TAG_ADDRESS.to_string(),
            owner.address.clone(),
        ),
        ("prov:os".to_string(), os.to_string()),
    ])
}

fn tags_of(server: &Value) -> BTreeMap<String, String> {
    list(server, "labels", "label")
        .iter()
        .map(|l| (tag_key(&s(l, "key")), s(l, "value")))
        .collect()
}

/// The create-server body (`POST /server`).
pub struct CreateInput<'a> {
    pub spec: &'a ServerSpec,
    pub owner: &'a Ownership,
    pub template: &'a str,
    pub size_gb: u64,
    pub login_user: &'a str,
    pub rules: &'a [Value],
}

pub fn create_body(i: &CreateInput) -> Value {
    let spec = i.spec;
    let storage = &spec.storage;
    let size = storage
        .get("size")
        .and_then(|v| num(Some(v)))
        .map(|f| f as u64)
        .unwrap_or(i.size_gb);
    let mut disk = json!({
        "action": "clone",
        "storage": i.template,
        "title": format!("{}-disk", spec.hostname),
        "size": size,
    });
    if let Some(t) = storage.get("type").and_then(Value::as_str) {
        disk["tier"] = json!(t);
    }
    if let Some(e) = storage.get("encrypted").and_then(Value::as_bool) {
        disk["encrypted"] = json!(if e { "yes" } else { "no" });
    }
    let public = spec
        .network
        .get("public_ip")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut interfaces = vec![];
    if public {
        interfaces
            .push(json!({"type": "public", "ip_addresses": {"ip_address": [{"family": "IPv4"}]}}));
    }
    interfaces
        .push(json!({"type": "utility", "ip_addresses": {"ip_address": [{"family": "IPv4"}]}}));
    if let Some(net) = spec.network.get("private_network").and_then(Value::as_str) {
        interfaces.push(json!({"type": "private", "network": net,
                               "ip_addresses": {"ip_address": [{"family": "IPv4"}]}}));
    }
    let mut server = json!({
        "zone": spec.zone,
        "title": spec.hostname,
        "hostname": spec.hostname,
        "plan": spec.plan,
        "metadata": "yes",
        "firewall": if i.rules.is_empty() { "off" } else { "on" },
        "labels": labels(&spec.tags, &prov_tags(i.owner, &spec.os)),
        "storage_devices": {"storage_device": [disk]},
        "networking": {"interfaces": {"interface": interfaces}},
        "login_user": {
            "username": i.login_user,
            "create_password": "no",
            "ssh_keys": {"ssh_key": spec.ssh_keys},
        },
    });
    if spec.ssh_keys.is_empty() {
        server["login_user"]["create_password"] = json!("yes");
    }
    json!({ "server": server })
}

pub fn status(state: &str) -> ServerStatus {
    match state {
        "started" => ServerStatus::Running,
        "stopped" => ServerStatus::Stopped,
        "error" => ServerStatus::Error,
        _ => ServerStatus::Unknown,
    }
}

fn address(server: &Value, access: &str) -> Option<String> {
    list(server, "ip_addresses", "ip_address")
        .iter()
        .find(|a| s(a, "access") == access && s(a, "family") != "IPv6")
        .map(|a| s(a, "address"))
        .filter(|a| !a.is_empty())
}

/// A server (from the list or the details answer) as prov sees it.
pub fn server_info(server: &Value, rules: Vec<FirewallRule>) -> ServerInfo {
    let tags = tags_of(server);
    let os = tags.get("prov:os").cloned().unwrap_or_default();
    ServerInfo {
        id: s(server, "uuid"),
        hostname: s(server, "hostname"),
        status: status(&s(server, "state")),
        plan: s(server, "plan"),
        zone: s(server, "zone"),
        os,
        public_ip: address(server, "public"),
        private_ip: address(server, "utility").or_else(|| address(server, "private")),
        tags,
        firewall_rules: rules,
        extra: json!({
            "state": s(server, "state"),
            "title": s(server, "title"),
            "core_number": num(server.get("core_number")),
            "memory_amount": num(server.get("memory_amount")),
            "firewall": s(server, "firewall"),
        }),
    }
}

/// An address or CIDR → an inclusive IPv4 range.
fn range(spec: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let bad = || {
        format!("{spec:?} is not an IPv4 address or CIDR (UpCloud firewall rules take IPv4 ranges)")
    };
    let (ip, bits) = match spec.split_once('/') {
        Some((ip, b)) => (ip, b.parse::<u32>().map_err(|_| bad())?),
        None => (spec, 32),
    };
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    if bits > 32 {
        return Err(bad());
    }
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    let start = u32::from(ip) & mask;
    Ok((Ipv4Addr::from(start), Ipv4Addr::from(start | !mask)))
}

/// An inclusive range back to the shortest spelling: `a.b.c.d` or `a.b.c.d/n`.
fn cidr(start: &str, end: &str) -> Option<String> {
    let (a, b): (Ipv4Addr, Ipv4Addr) = (start.parse().ok()?, end.parse().ok()?);
    if a == b {
        return Some(a.to_string());
    }
    let (a32, b32) = (u32::from(a), u32::from(b));
    let size = b32.wrapping_sub(a32).wrapping_add(1);
    if b32 > a32 && (size == 0 || (size.is_power_of_two() && a32 % size == 0)) {
        let bits = 32 - size.trailing_zeros();
        return Some(format!("{a}/{bits}"));
    }
    if a32 == 0 && b32 == u32::MAX {
        return Some("0.0.0.0/0".into());
    }
    Some(format!("{a}-{b}"))
}

/// A prov rule → an UpCloud `firewall_rule` (position is 1-based).
pub fn rule_to_api(r: &FirewallRule, position: usize) -> Result<Value, String> {
    let direction = match r.direction.as_str() {
        "ingress" => "in",
        "egress" => "out",
        d => return Err(format!("direction {d:?} (valid: ingress, egress)")),
    };
    let action = match r.action.as_str() {
        "allow" => "accept",
        "deny" => "drop",
        a => return Err(format!("action {a:?} (valid: allow, deny)")),
    };
    if !matches!(r.protocol.as_str(), "tcp" | "udp" | "icmp") {
        return Err(format!("protocol {:?} (valid: tcp, udp, icmp)", r.protocol));
    }
    let mut v = json!({
        "position": position.to_string(),
        "direction": direction,
        "action": action,
        "family": "IPv4",
        "protocol": r.protocol,
    });
    if let Some(port) = &r.port {
        let (a, b) = port.split_once('-').unwrap_or((port, port));
        let (a, b): (u16, u16) = match (a.parse(), b.parse()) {
            (Ok(a), Ok(b)) if a >= 1 && a <= b => (a, b),
            _ => {
                return Err(format!(
                    "port {port:?} (a port like \"22\" or a range like \"8000-8100\")"
                ))
            }
        };
        v["destination_port_start"] = json!(a.to_string());
        v["destination_port_end"] = json!(b.to_string());
    }
    for (field, spec) in [("source", &r.source), ("destination", &r.destination)] {
        if let Some(spec) = spec {
            let (a, b) = range(spec)?;
            v[format!("{field}_address_start")] = json!(a.to_string());
            v[format!("{field}_address_end")] = json!(b.to_string());
        }
    }
    Ok(v)
}

/// An UpCloud `firewall_rule` → a prov rule.
pub fn rule_from_api(v: &Value) -> FirewallRule {
    let port = match (s(v, "destination_port_start"), s(v, "destination_port_end")) {
        (a, _) if a.is_empty() => None,
        (a, b) if a == b || b.is_empty() => Some(a),
        (a, b) => Some(format!("{a}-{b}")),
    };
    let addr = |field: &str| {
        let (a, b) = (
            s(v, &format!("{field}_address_start")),
            s(v, &format!("{field}_address_end")),
        );
        if a.is_empty() {
            None
        } else {
            cidr(&a, if b.is_empty() { &a } else { &b })
        }
    };
    FirewallRule {
        direction: if s(v, "direction") == "out" {
            "egress"
        } else {
            "ingress"
        }
        .into(),
        protocol: s(v, "protocol"),
        port,
        source: addr("source"),
        destination: addr("destination"),
        action: if s(v, "action") == "accept" {
            "allow"
        } else {
            "deny"
        }
        .into(),
    }
}

pub fn plans(body: &Value) -> Vec<PlanInfo> {
    list(body, "plans", "plan")
        .iter()
        .map(|p| PlanInfo {
            name: s(p, "name"),
            cores: num(p.get("core_number")).unwrap_or(0.0) as u32,
            memory_mb: num(p.get("memory_amount")).unwrap_or(0.0) as u64,
            storage_gb: num(p.get("storage_size")).unwrap_or(0.0) as u64,
        })
        .collect()
}

pub fn zones(body: &Value) -> Vec<Zone> {
    list(body, "zones", "zone")
        .iter()
        .map(|z| Zone {
            name: s(z, "id"),
            description: s(z, "description"),
        })
        .collect()
}

/// `GET /price`: per zone, `server_plan_NAME = {amount, price}` with the price in euro cents
/// per hour.
pub fn prices(body: &Value) -> Vec<Pricing> {
    let mut out = vec![];
    for z in list(body, "prices", "zone") {
        let zone = s(z, "name");
        let Some(items) = z.as_object() else { continue };
        for (k, v) in items {
            let Some(plan) = k.strip_prefix("server_plan_") else {
                continue;
            };
            let Some(cents) = num(v.get("price")) else {
                continue;
            };
            let hourly = cents / 100.0;
            out.push(Pricing {
                plan: plan.to_string(),
                zone: Some(zone.clone()),
                hourly,
                monthly: (hourly * HOURS_PER_MONTH * 100.0).round() / 100.0,
                currency: "EUR".into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_round_trip() {
        let rules = [
            FirewallRule {
                direction: "ingress".into(),
                protocol: "tcp".into(),
                port: Some("22".into()),
                source: Some("10.1.2.0/24".into()),
                destination: None,
                action: "allow".into(),
            },
            FirewallRule {
                direction: "egress".into(),
                protocol: "udp".into(),
                port: Some("8000-8100".into()),
                source: Some("0.0.0.0/0".into()),
                destination: Some("192.0.2.7".into()),
                action: "deny".into(),
            },
        ];
        for (i, r) in rules.iter().enumerate() {
            let v = rule_to_api(r, i + 1).unwrap();
            assert_eq!(&rule_from_api(&v), r, "{v}");
        }
        let v = rule_to_api(&rules[0], 1).unwrap();
        assert_eq!(v["source_address_start"], "10.1.2.0");
        assert_eq!(v["source_address_end"], "10.1.2.255");
        assert_eq!(v["direction"], "in");
        let mut bad = rules[0].clone();
        bad.source = Some("2001:db8::/32".into());
        assert!(rule_to_api(&bad, 1).unwrap_err().contains("IPv4"));
        bad.source = None;
        bad.port = Some("99999".into());
        assert!(rule_to_api(&bad, 1).unwrap_err().contains("port"));
    }

    #[test]
    fn tags_and_labels() {
        assert_eq!(label_key("prov:workspace"), "prov_workspace");
        assert_eq!(tag_key("prov_address"), "prov:address");
        assert!(check_tag("env", "prod").is_ok());
        assert!(check_tag("a:b", "x").is_err());
        assert!(check_tag("prov_x", "x").is_err());
    }

    #[test]
    fn prices_in_cents_per_hour() {
        let body = json!({"prices": {"zone": [{"name": "fi-hel1",
            "firewall": {"amount": 1, "price": 0.56},
            "server_plan_1xCPU-1GB": {"amount": 1, "price": 0.744}}]}});
        let p = prices(&body);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].plan, "1xCPU-1GB");
        assert!((p[0].hourly - 0.00744).abs() < 1e-9);
        assert_eq!(p[0].monthly, 5.0);
    }
}
