//! A local HTTP fixture that follows UpCloud API 1.3's documented request and response shapes
//! (no public mock of UpCloud exists, so the upcloud tests are contract tests against this).
//!
//! It checks every request — method, path, the basic `Authorization` header, JSON content type
//! and body shape — and records contract violations (answered with HTTP 400 so the client fails
//! loudly; tests assert there were none). Servers move through `maintenance` to `started` or
//! `stopped` over a few polls like the real service. Faults are scripted per request: 429 with
//! `Retry-After`, 503, or a slow answer.

use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const USER: &str = "prov-test";
pub const PASSWORD: &str = "correct-horse-battery";

#[derive(Debug, Clone)]
pub enum Fault {
    /// HTTP 429 with `Retry-After: secs`.
    Throttle(u64),
    /// HTTP 503 without a hint.
    Unavailable,
    /// Sleep this long before answering normally.
    Slow(Duration),
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub body: Value,
}

struct Server {
    v: Value,
    rules: Vec<Value>,
    /// While `maintenance`: the state reached after `polls` more GETs.
    target: &'static str,
    polls: u32,
}

#[derive(Default)]
struct State {
    servers: BTreeMap<String, Server>,
    next: u32,
    log: Vec<Logged>,
    violations: Vec<String>,
    /// (method, path prefix) → faults for the next matching requests, in order.
    faults: Vec<(String, String, VecDeque<Fault>)>,
}

#[derive(Clone)]
pub struct Fixture {
    pub url: String,
    state: Arc<Mutex<State>>,
}

const PLANS: &[(&str, u32, u64, u64)] = &[
    ("1xCPU-1GB", 1, 1024, 25),
    ("1xCPU-2GB", 1, 2048, 50),
    ("2xCPU-4GB", 2, 4096, 80),
];
const ZONES: &[(&str, &str)] = &[("fi-hel1", "Helsinki #1"), ("de-fra1", "Frankfurt #1")];

impl Fixture {
    pub fn start() -> Fixture {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/1.3", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || handle(conn, &st));
            }
        });
        Fixture { url, state }
    }

    pub fn fault(&self, method: &str, path_prefix: &str, faults: &[Fault]) {
        self.state.lock().unwrap().faults.push((
            method.into(),
            path_prefix.into(),
            faults.iter().cloned().collect(),
        ));
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    /// "METHOD /path" of every request so far.
    pub fn calls(&self) -> Vec<String> {
        self.log()
            .iter()
            .map(|l| format!("{} {}", l.method, l.path))
            .collect()
    }

    pub fn violations(&self) -> Vec<String> {
        self.state.lock().unwrap().violations.clone()
    }

    /// A server as the API holds it (for out-of-band checks).
    pub fn server(&self, uuid: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .servers
            .get(uuid)
            .map(|s| s.v.clone())
    }

    /// Changes a server's address of one `access` (public, utility) outside prov.
    pub fn set_address(&self, uuid: &str, access: &str, address: &str) {
        let mut g = self.state.lock().unwrap();
        let s = g.servers.get_mut(uuid).unwrap();
        for a in s.v["ip_addresses"]["ip_address"]
            .as_array_mut()
            .unwrap()
            .iter_mut()
            .filter(|a| a["access"] == access && a["family"] == "IPv4")
        {
            a["address"] = address.into();
        }
    }

    pub fn rules(&self, uuid: &str) -> Vec<Value> {
        self.state
            .lock()
            .unwrap()
            .servers
            .get(uuid)
            .map(|s| s.rules.clone())
            .unwrap_or_default()
    }
}

struct Req {
    method: String,
    path: String,
    query: String,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(conn: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Some(Req {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn respond(mut conn: TcpStream, status: u16, extra: &[(&str, String)], body: Option<Value>) {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Other",
    };
    let text = body.map(|b| b.to_string()).unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Length: {}\r\n",
        text.len()
    );
    if !text.is_empty() {
        head.push_str("Content-Type: application/json; charset=UTF-8\r\n");
    }
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // The client may have given up (timeouts): nothing to do about a closed socket.
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(text.as_bytes());
}

fn error(code: &str, message: &str) -> Value {
    json!({"error": {"error_code": code, "error_message": message}})
}

fn handle(conn: TcpStream, st: &Mutex<State>) {
    let Some(req) = read_request(&conn) else {
        return;
    };
    let body: Value = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body).unwrap_or(Value::String("<not json>".into()))
    };
    let fault = {
        let mut s = st.lock().unwrap();
        s.log.push(Logged {
            method: req.method.clone(),
            path: if req.query.is_empty() {
                req.path.clone()
            } else {
                format!("{}?{}", req.path, req.query)
            },
            body: body.clone(),
        });
        s.faults
            .iter_mut()
            .find(|(m, p, q)| *m == req.method && req.path.starts_with(p.as_str()) && !q.is_empty())
            .and_then(|(_, _, q)| q.pop_front())
    };
    match fault {
        Some(Fault::Throttle(secs)) => {
            return respond(
                conn,
                429,
                &[("Retry-After", secs.to_string())],
                Some(error("TOO_MANY_REQUESTS", "Rate limit exceeded.")),
            )
        }
        Some(Fault::Unavailable) => {
            return respond(
                conn,
                503,
                &[],
                Some(error("SERVICE_UNAVAILABLE", "Try again later.")),
            )
        }
        Some(Fault::Slow(d)) => std::thread::sleep(d),
        None => {}
    }
    let expected = {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        )
    };
    if req.headers.get("authorization") != Some(&expected) {
        return respond(
            conn,
            401,
            &[],
            Some(error(
                "AUTHENTICATION_FAILED",
                "Authentication failed using the given username and password.",
            )),
        );
    }
    let (status, answer) = route(st, &req, &body);
    respond(conn, status, &[], answer);
}

/// A contract violation: recorded, and answered with 400 so the client fails.
fn violation(st: &Mutex<State>, req: &Req, what: String) -> (u16, Option<Value>) {
    let msg = format!("{} {}: {what}", req.method, req.path);
    st.lock().unwrap().violations.push(msg.clone());
    (400, Some(error("CONTRACT_VIOLATION", &msg)))
}

fn is_str(v: &Value, ptr: &str) -> bool {
    v.pointer(ptr)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty())
}

fn label_ok(l: &Value) -> bool {
    let key = l.get("key").and_then(Value::as_str).unwrap_or("");
    !key.is_empty()
        && key.len() <= 32
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && l.get("value").is_some_and(Value::is_string)
}

/// Checks a create-server body against the documented shape.
fn check_create(b: &Value) -> Result<(), String> {
    let s = b.get("server").ok_or("body must be {\"server\": {...}}")?;
    for f in ["zone", "title", "hostname", "plan"] {
        if !is_str(s, &format!("/{f}")) {
            return Err(format!("server.{f} must be a non-empty string"));
        }
    }
    let disks = s
        .pointer("/storage_devices/storage_device")
        .and_then(Value::as_array)
        .ok_or("server.storage_devices.storage_device must be an array")?;
    if disks.is_empty() {
        return Err("at least one storage device".into());
    }
    for d in disks {
        if d.get("action").and_then(Value::as_str) != Some("clone") || !is_str(d, "/storage") {
            return Err(format!("storage device {d}: action clone of a storage"));
        }
        if !d.get("size").is_some_and(|v| v.is_u64()) {
            return Err(format!("storage device {d}: size in GB"));
        }
    }
    if let Some(labels) = s.get("labels") {
        let list = labels
            .get("label")
            .and_then(Value::as_array)
            .ok_or("server.labels must be {\"label\": [...]}")?;
        if let Some(bad) = list.iter().find(|l| !label_ok(l)) {
            return Err(format!("invalid label {bad}"));
        }
    }
    if let Some(u) = s.get("login_user") {
        if !is_str(u, "/username") {
            return Err("login_user.username".into());
        }
        if let Some(keys) = u.get("ssh_keys") {
            if !keys.get("ssh_key").is_some_and(Value::is_array) {
                return Err("login_user.ssh_keys must be {\"ssh_key\": [...]}".into());
            }
        }
    }
    let ifaces = s
        .pointer("/networking/interfaces/interface")
        .and_then(Value::as_array)
        .ok_or("server.networking.interfaces.interface must be an array")?;
    for i in ifaces {
        if !matches!(
            i.get("type").and_then(Value::as_str),
            Some("public" | "utility" | "private")
        ) {
            return Err(format!("interface {i}: type public, utility or private"));
        }
    }
    Ok(())
}

fn check_rule(r: &Value) -> Result<(), String> {
    let r = r
        .get("firewall_rule")
        .ok_or("body must be {\"firewall_rule\": {...}}")?;
    let one_of = |f: &str, valid: &[&str]| match r.get(f).and_then(Value::as_str) {
        Some(v) if valid.contains(&v) => Ok(()),
        _ => Err(format!("firewall_rule.{f} must be one of {valid:?}")),
    };
    one_of("direction", &["in", "out"])?;
    one_of("action", &["accept", "reject", "drop"])?;
    one_of("family", &["IPv4", "IPv6"])?;
    if r.get("protocol").is_some() {
        one_of("protocol", &["tcp", "udp", "icmp"])?;
    }
    for pair in ["destination_port", "source_address", "destination_address"] {
        let (a, b) = (
            r.get(format!("{pair}_start")).is_some(),
            r.get(format!("{pair}_end")).is_some(),
        );
        if a != b {
            return Err(format!("{pair}_start and {pair}_end go together"));
        }
    }
    Ok(())
}

fn summary(v: &Value) -> Value {
    let mut s = v.clone();
    if let Some(o) = s.as_object_mut() {
        o.remove("ip_addresses");
        o.remove("storage_devices");
    }
    s
}

fn route(st: &Mutex<State>, req: &Req, body: &Value) -> (u16, Option<Value>) {
    let Some(path) = req.path.strip_prefix("/1.3") else {
        return violation(st, req, "paths start with /1.3".into());
    };
    let has_body = !req.body.is_empty();
    if has_body
        && !req
            .headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    {
        return violation(st, req, "a body must be sent as application/json".into());
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_found = |id: &str| {
        (
            404,
            Some(error(
                "SERVER_NOT_FOUND",
                &format!("The server {id} does not exist."),
            )),
        )
    };
    let illegal = |state: &str| {
        (
            409,
            Some(error(
                "SERVER_STATE_ILLEGAL",
                &format!("The server is in state {state}."),
            )),
        )
    };
    match (req.method.as_str(), parts.as_slice()) {
        ("GET", ["account"]) => (
            200,
            Some(json!({"account": {"username": USER, "credits": 1000}})),
        ),
        ("GET", ["plan"]) => (
            200,
            Some(
                json!({"plans": {"plan": PLANS.iter().map(|(n, c, m, s)| json!({
                "name": n, "core_number": c, "memory_amount": m, "storage_size": s,
                "storage_tier": "maxiops", "public_traffic_out": 1024})).collect::<Vec<_>>()}}),
            ),
        ),
        ("GET", ["zone"]) => (
            200,
            Some(json!({"zones": {"zone": ZONES.iter().map(|(id, d)| json!({
                "id": id, "description": d, "public": "yes"})).collect::<Vec<_>>()}})),
        ),
        ("GET", ["price"]) => {
            let zones: Vec<Value> = ZONES
                .iter()
                .map(|(z, _)| {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), json!(z));
                    m.insert("firewall".into(), json!({"amount": 1, "price": 0.56}));
                    for (i, (n, ..)) in PLANS.iter().enumerate() {
                        m.insert(
                            format!("server_plan_{n}"),
                            json!({"amount": 1, "price": 0.744 * (i as f64 + 1.0)}),
                        );
                    }
                    Value::Object(m)
                })
                .collect();
            (200, Some(json!({"prices": {"zone": zones}})))
        }
        ("GET", ["ip_address"]) => {
            // Every address of the account, each naming its server (API 1.3 "List IP addresses").
            let s = st.lock().unwrap();
            let list: Vec<Value> = s
                .servers
                .values()
                .flat_map(|x| {
                    let uuid = x.v["uuid"].clone();
                    x.v.pointer("/ip_addresses/ip_address")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                        .into_iter()
                        .map(move |mut a| {
                            a["server"] = uuid.clone();
                            a
                        })
                })
                .collect();
            (200, Some(json!({"ip_addresses": {"ip_address": list}})))
        }
        ("GET", ["server"]) => {
            let s = st.lock().unwrap();
            let list: Vec<Value> = s.servers.values().map(|x| summary(&x.v)).collect();
            (200, Some(json!({"servers": {"server": list}})))
        }
        ("POST", ["server"]) => {
            if let Err(e) = check_create(body) {
                return violation(st, req, e);
            }
            let s = &body["server"];
            let plan = s["plan"].as_str().unwrap_or_default();
            if !PLANS.iter().any(|p| p.0 == plan) {
                return (
                    400,
                    Some(error(
                        "PLAN_INVALID",
                        &format!("Plan {plan} does not exist."),
                    )),
                );
            }
            let zone = s["zone"].as_str().unwrap_or_default();
            if !ZONES.iter().any(|z| z.0 == zone) {
                return (
                    400,
                    Some(error(
                        "ZONE_INVALID",
                        &format!("Zone {zone} does not exist."),
                    )),
                );
            }
            let mut g = st.lock().unwrap();
            g.next += 1;
            let n = g.next;
            let uuid = format!("00{n:06x}-1111-4222-8333-444455556666");
            let mut v = json!({
                "uuid": uuid,
                "title": s["title"],
                "hostname": s["hostname"],
                "plan": plan,
                "zone": zone,
                "state": "maintenance",
                "core_number": "1",
                "memory_amount": "1024",
                "firewall": s.get("firewall").cloned().unwrap_or(json!("off")),
                "labels": s.get("labels").cloned().unwrap_or(json!({"label": []})),
                "tags": {"tag": []},
                "ip_addresses": {"ip_address": [
                    {"access": "public", "address": format!("94.237.0.{n}"), "family": "IPv4"},
                    {"access": "utility", "address": format!("10.3.0.{n}"), "family": "IPv4"},
                    {"access": "public", "address": "2a04:3540::1", "family": "IPv6"},
                ]},
                "storage_devices": {"storage_device": [{
                    "storage": format!("01{n:06x}-0000-4000-8000-000000000000"),
                    "storage_title": s.pointer("/storage_devices/storage_device/0/title").cloned().unwrap_or(json!("disk")),
                    "storage_size": s.pointer("/storage_devices/storage_device/0/size").cloned(),
                    "type": "disk",
                }]},
            });
            g.servers.insert(
                uuid,
                Server {
                    v: v.clone(),
                    rules: vec![],
                    target: "started",
                    polls: 2,
                },
            );
            v["progress"] = json!("0");
            (202, Some(json!({ "server": v })))
        }
        (m, ["server", id, rest @ ..]) => {
            let mut g = st.lock().unwrap();
            let Some(srv) = g.servers.get_mut(*id) else {
                return not_found(id);
            };
            let state = srv.v["state"].as_str().unwrap_or_default().to_string();
            match (m, rest) {
                ("GET", []) => {
                    if state == "maintenance" {
                        srv.polls = srv.polls.saturating_sub(1);
                        if srv.polls == 0 {
                            srv.v["state"] = json!(srv.target);
                        }
                    }
                    (200, Some(json!({"server": srv.v})))
                }
                ("POST", ["start"]) => {
                    if state != "stopped" {
                        return illegal(&state);
                    }
                    srv.v["state"] = json!("maintenance");
                    (srv.target, srv.polls) = ("started", 1);
                    (200, Some(json!({"server": srv.v})))
                }
                ("POST", ["stop"]) => {
                    let ok = matches!(
                        body.pointer("/stop_server/stop_type")
                            .and_then(Value::as_str),
                        Some("soft" | "hard")
                    ) && body.pointer("/stop_server/timeout").is_some();
                    if !ok {
                        drop(g);
                        return violation(st, req, "body must be {\"stop_server\": {\"stop_type\": soft|hard, \"timeout\"}}".into());
                    }
                    if state != "started" {
                        return illegal(&state);
                    }
                    srv.v["state"] = json!("maintenance");
                    (srv.target, srv.polls) = ("stopped", 1);
                    (200, Some(json!({"server": srv.v})))
                }
                ("POST", ["restart"]) => {
                    let ok = matches!(
                        body.pointer("/restart_server/stop_type")
                            .and_then(Value::as_str),
                        Some("soft" | "hard")
                    ) && body.pointer("/restart_server/timeout_action").is_some();
                    if !ok {
                        drop(g);
                        return violation(st, req, "body must be {\"restart_server\": {stop_type, timeout, timeout_action}}".into());
                    }
                    if state != "started" {
                        return illegal(&state);
                    }
                    srv.v["state"] = json!("maintenance");
                    (srv.target, srv.polls) = ("started", 2);
                    (200, Some(json!({"server": srv.v})))
                }
                ("PUT", []) => {
                    let Some(change) = body.get("server").and_then(Value::as_object) else {
                        drop(g);
                        return violation(st, req, "body must be {\"server\": {...}}".into());
                    };
                    for (k, v) in change {
                        match k.as_str() {
                            "plan" => {
                                if state != "stopped" {
                                    return illegal(&state);
                                }
                                srv.v["plan"] = v.clone();
                            }
                            "labels" => {
                                let ok = v
                                    .get("label")
                                    .and_then(Value::as_array)
                                    .is_some_and(|l| l.iter().all(label_ok));
                                if !ok {
                                    drop(g);
                                    return violation(st, req, format!("invalid labels {v}"));
                                }
                                srv.v["labels"] = v.clone();
                            }
                            "firewall" if matches!(v.as_str(), Some("on" | "off")) => {
                                srv.v["firewall"] = v.clone();
                            }
                            "title" | "hostname" => srv.v[k.as_str()] = v.clone(),
                            other => {
                                let other = other.to_string();
                                drop(g);
                                return violation(st, req, format!("unexpected field {other}"));
                            }
                        }
                    }
                    (202, Some(json!({"server": srv.v})))
                }
                ("DELETE", []) => {
                    if req.query != "storages=1" {
                        drop(g);
                        return violation(
                            st,
                            req,
                            "delete with ?storages=1 (prov never leaves disks behind)".into(),
                        );
                    }
                    if state != "stopped" {
                        return illegal(&state);
                    }
                    g.servers.remove(*id);
                    (204, None)
                }
                ("GET", ["firewall_rule"]) => (
                    200,
                    Some(json!({"firewall_rules": {"firewall_rule": srv.rules}})),
                ),
                ("POST", ["firewall_rule"]) => {
                    if let Err(e) = check_rule(body) {
                        drop(g);
                        return violation(st, req, e);
                    }
                    let mut r = body["firewall_rule"].clone();
                    let pos = srv.rules.len() + 1;
                    r["position"] = json!(pos.to_string());
                    srv.rules.push(r.clone());
                    (201, Some(json!({"firewall_rule": r})))
                }
                ("DELETE", ["firewall_rule", pos]) => {
                    let p: usize = pos.parse().unwrap_or(0);
                    if p == 0 || p > srv.rules.len() {
                        return (404, Some(error("FIREWALL_RULE_NOT_FOUND", "No such rule.")));
                    }
                    srv.rules.remove(p - 1);
                    for (i, r) in srv.rules.iter_mut().enumerate() {
                        r["position"] = json!((i + 1).to_string());
                    }
                    (204, None)
                }
                _ => {
                    drop(g);
                    violation(st, req, "no such operation in API 1.3".into())
                }
            }
        }
        _ => violation(st, req, "no such operation in API 1.3".into()),
    }
}
