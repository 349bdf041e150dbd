//! Contract tests of the upcloud provider against a local fixture that follows UpCloud API 1.3's
//! documented shapes (see `fixture`): the server lifecycle, the catalogue, ownership labels,
//! firewall rules, and the failures — bad credentials, not found, throttling with Retry-After,
//! timeouts. A real-cloud test runs only when UPCLOUD_USERNAME is set.

mod fixture;

use fixture::{Fault, Fixture, PASSWORD, USER};
use prov_engine::registry::ExtContext;
use prov_engine::traits::{
    ErrorKind, FirewallRule, Ownership, Provider, ServerSpec, ServerStatus, ServerUpdate,
};
use prov_providers::upcloud;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn settings(fx: &Fixture, extra: Value) -> Value {
    let mut s = json!({
        "auth": {"method": "basic", "username": USER, "password": PASSWORD},
        "api": {"base_url": fx.url, "version": "1.3", "timeout": 5, "retries": 3},
        "poll_interval_ms": 5,
        "wait_timeout_secs": 10,
    });
    if let (Some(m), Some(e)) = (s.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            if k == "api" {
                for (ak, av) in v.as_object().unwrap() {
                    m["api"][ak] = av.clone();
                }
            } else {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    s
}

fn build(settings: Value) -> Result<Arc<dyn Provider>, prov_engine::traits::ExtError> {
    upcloud::factory()(&ExtContext {
        workspace_dir: std::env::temp_dir(),
        workspace_name: "ws".into(),
        name: "upcloud".into(),
        settings,
    })
}

fn provider(fx: &Fixture, extra: Value) -> Arc<dyn Provider> {
    build(settings(fx, extra)).unwrap()
}

fn rule(port: &str, source: &str) -> FirewallRule {
    FirewallRule {
        direction: "ingress".into(),
        protocol: "tcp".into(),
        port: Some(port.into()),
        source: Some(source.into()),
        destination: None,
        action: "allow".into(),
    }
}

fn spec(hostname: &str) -> ServerSpec {
    ServerSpec {
        hostname: hostname.into(),
        plan: "1xCPU-1GB".into(),
        zone: "fi-hel1".into(),
        os: "ubuntu-22.04".into(),
        ssh_keys: vec!["ssh-ed25519 AAAAC3Nza test@prov".into()],
        tags: BTreeMap::from([("env".to_string(), "test".to_string())]),
        firewall_rules: vec![rule("22", "0.0.0.0/0")],
        storage: json!({"size": 30, "encrypted": true}),
        network: json!({"public_ip": true}),
    }
}

fn owner() -> Ownership {
    Ownership {
        workspace: "ws".into(),
        address: "server.web-01".into(),
    }
}

fn no_violations(fx: &Fixture) {
    assert!(fx.violations().is_empty(), "{:#?}", fx.violations());
}

#[tokio::test]
async fn server_lifecycle_follows_the_api_contract() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({"parallelism": 2}));
    assert_eq!(p.parallelism(), Some(2));

    let s = p.create_server(&spec("web-01"), &owner()).await.unwrap();
    assert_eq!(s.status, ServerStatus::Running);
    assert_eq!(s.hostname, "web-01");
    assert_eq!(s.os, "ubuntu-22.04");
    assert_eq!(s.public_ip.as_deref(), Some("94.237.0.1"));
    assert_eq!(s.private_ip.as_deref(), Some("10.3.0.1"));
    assert_eq!(s.tags["prov:workspace"], "ws");
    assert_eq!(s.tags["prov:address"], "server.web-01");
    assert_eq!(s.tags["env"], "test");
    assert_eq!(s.firewall_rules, vec![rule("22", "0.0.0.0/0")]);

    // What went over the wire: the documented create body, labels for the ownership tags.
    let create = fx
        .log()
        .into_iter()
        .find(|l| l.method == "POST" && l.path == "/1.3/server")
        .unwrap()
        .body;
    let srv = &create["server"];
    assert_eq!(srv["zone"], "fi-hel1");
    assert_eq!(srv["plan"], "1xCPU-1GB");
    assert_eq!(
        srv["storage_devices"]["storage_device"][0]["storage"],
        "01000000-0000-4000-8000-000030220200"
    );
    assert_eq!(srv["storage_devices"]["storage_device"][0]["size"], 30);
    assert_eq!(
        srv["storage_devices"]["storage_device"][0]["encrypted"],
        "yes"
    );
    assert_eq!(
        srv["login_user"]["ssh_keys"]["ssh_key"][0],
        "ssh-ed25519 AAAAC3Nza test@prov"
    );
    let labels = srv["labels"]["label"].as_array().unwrap();
    assert!(labels.contains(&json!({"key": "prov_workspace", "value": "ws"})));
    assert!(labels.contains(&json!({"key": "prov_address", "value": "server.web-01"})));
    assert_eq!(srv["firewall"], "on");
    let r = &fx.rules(&s.id)[0];
    assert_eq!(
        (r["direction"].as_str(), r["action"].as_str()),
        (Some("in"), Some("accept"))
    );
    assert_eq!(r["destination_port_start"], "22");
    assert_eq!(r["source_address_end"], "255.255.255.255");

    assert_eq!(p.get_server_info(&s.id).await.unwrap().unwrap(), s);
    let listed = p.list_servers().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].tags["prov:address"], "server.web-01");

    p.stop_server(&s.id).await.unwrap();
    assert_eq!(fx.server(&s.id).unwrap()["state"], "stopped");
    p.stop_server(&s.id).await.unwrap(); // already stopped: nothing to do
    p.start_server(&s.id).await.unwrap();
    assert_eq!(fx.server(&s.id).unwrap()["state"], "started");
    p.reboot_server(&s.id).await.unwrap();
    assert_eq!(fx.server(&s.id).unwrap()["state"], "started");

    let ssh = p.get_ssh_access(&s.id).await.unwrap();
    assert_eq!(
        (ssh.host.as_str(), ssh.port, ssh.user.as_str()),
        ("94.237.0.1", 22, "root")
    );

    // In-place update: labels, a resize (stop, PUT plan, start), new firewall rules.
    let mut after = spec("web-01");
    after.plan = "2xCPU-4GB".into();
    after.tags = BTreeMap::from([("env".to_string(), "prod".to_string())]);
    after.firewall_rules = vec![rule("443", "10.1.0.0/16"), rule("80", "192.0.2.9")];
    let u = p
        .update_server(
            &s.id,
            &ServerUpdate {
                before: spec("web-01"),
                after: after.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(u.plan, "2xCPU-4GB");
    assert_eq!(u.status, ServerStatus::Running);
    assert_eq!(u.tags["env"], "prod");
    assert_eq!(
        u.tags["prov:address"], "server.web-01",
        "ownership labels kept"
    );
    assert_eq!(u.firewall_rules, after.firewall_rules);
    let mut zone_change = after.clone();
    zone_change.zone = "de-fra1".into();
    let e = p
        .update_server(
            &s.id,
            &ServerUpdate {
                before: after.clone(),
                after: zone_change,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.to_string().contains("zone cannot change in place"), "{e}");

    p.configure_firewall(&s.id, &[]).await.unwrap();
    assert!(fx.rules(&s.id).is_empty());
    assert_eq!(fx.server(&s.id).unwrap()["firewall"], "off");

    // Delete: stop first, then DELETE with its storages.
    p.delete_server(&s.id).await.unwrap();
    let calls = fx.calls();
    let stop = calls
        .iter()
        .rposition(|c| *c == format!("POST /1.3/server/{}/stop", s.id))
        .unwrap();
    let del = calls
        .iter()
        .position(|c| *c == format!("DELETE /1.3/server/{}?storages=1", s.id))
        .unwrap();
    assert!(stop < del, "{calls:#?}");
    let stop_body = &fx.log()[stop].body;
    assert_eq!(stop_body["stop_server"]["stop_type"], "hard");
    assert_eq!(p.get_server_info(&s.id).await.unwrap(), None);
    let e = p.delete_server(&s.id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    no_violations(&fx);
}

#[tokio::test]
async fn catalogue_and_connection() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({}));
    let plans = p.get_plans().await.unwrap();
    assert_eq!(plans.len(), 3);
    assert_eq!(
        (
            plans[0].name.as_str(),
            plans[0].cores,
            plans[0].memory_mb,
            plans[0].storage_gb
        ),
        ("1xCPU-1GB", 1, 1024, 25)
    );
    let zones = p.get_zones().await.unwrap();
    assert_eq!(zones[0].name, "fi-hel1");
    assert_eq!(zones[0].description, "Helsinki #1");
    let prices = p.get_pricing().await.unwrap();
    assert_eq!(prices.len(), 6);
    let small = prices
        .iter()
        .find(|x| x.plan == "1xCPU-1GB" && x.zone.as_deref() == Some("de-fra1"))
        .unwrap();
    assert!((small.hourly - 0.00744).abs() < 1e-9);
    assert_eq!(small.currency, "EUR");
    crate::assert_prices_every_plan(&*p).await;
    let t = p.test_connection().await.unwrap();
    assert!(t.success, "{}", t.message);
    assert!(t.message.contains(USER));
    let info = p.info().await.unwrap();
    assert_eq!(info.supported_operations.len(), 16);
    assert!(info.supported_os.contains(&"ubuntu-22.04".to_string()));
    assert!(p
        .validate_config(&settings(&fx, json!({})))
        .await
        .unwrap()
        .valid());
    no_violations(&fx);
}

#[tokio::test]
async fn bad_credentials_and_missing_ones_never_show_the_password() {
    let fx = Fixture::start();
    let p = provider(
        &fx,
        json!({"auth": {"method": "basic", "username": USER, "password": "wrong-password-123"}}),
    );
    let e = p.get_server_info("00000001-aaaa").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth);
    let text = e.to_string();
    assert!(
        text.starts_with("upcloud: get-server-info 00000001-aaaa: authentication failed"),
        "{text}"
    );
    assert!(text.contains("HTTP 401 AUTHENTICATION_FAILED"), "{text}");
    assert!(text.contains("providers.upcloud.auth"), "{text}");
    assert!(
        !text.contains("wrong-password-123") && !text.contains(PASSWORD),
        "{text}"
    );
    let t = p.test_connection().await.unwrap();
    assert!(!t.success);
    assert!(t.message.contains("authentication failed"));
    // Authentication failures are not retried.
    assert_eq!(fx.calls().len(), 2);

    // No credentials at all: an error before any request.
    let mut s = settings(&fx, json!({}));
    s.as_object_mut().unwrap().remove("auth");
    let before = fx.calls().len();
    if std::env::var_os("UPCLOUD_USERNAME").is_none() {
        let p = build(s).unwrap();
        let e = p.list_servers().await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(e.to_string().contains("UPCLOUD_USERNAME"), "{e}");
        assert_eq!(fx.calls().len(), before);
        let v = p.validate_config(&json!({})).await.unwrap();
        assert!(v.warnings[0].contains("no credentials"), "{v:?}");
    }
}

#[tokio::test]
async fn not_found_is_none_for_info_and_an_error_naming_the_server_elsewhere() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({}));
    let id = "0000dead-1111-4222-8333-444455556666";
    assert_eq!(p.get_server_info(id).await.unwrap(), None);
    for e in [
        p.start_server(id).await.unwrap_err(),
        p.reboot_server(id).await.unwrap_err(),
        p.get_ssh_access(id).await.unwrap_err(),
        p.configure_firewall(id, &[]).await.unwrap_err(),
    ] {
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        assert_eq!(e.target.as_deref(), Some(id));
        assert!(e.to_string().contains(id), "{e}");
    }
    // Invalid input is refused by the API with its own code.
    let mut bad = spec("web-02");
    bad.plan = "64xCPU-1TB".into();
    let e = p.create_server(&bad, &owner()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.to_string().contains("PLAN_INVALID"), "{e}");
    assert!(e.to_string().contains("create-server web-02"), "{e}");
    // ... or client-side before any request, for what the API could not express.
    let before = fx.calls().len();
    let mut bad = spec("web-03");
    bad.tags.insert("team:ops".into(), "x".into());
    let e = p.create_server(&bad, &owner()).await.unwrap_err();
    assert!(e.to_string().contains("team:ops"), "{e}");
    let mut bad = spec("web-03");
    bad.firewall_rules = vec![rule("22", "2001:db8::/32")];
    let e = p.create_server(&bad, &owner()).await.unwrap_err();
    assert!(e.to_string().contains("firewall rule 0"), "{e}");
    assert_eq!(fx.calls().len(), before);
    no_violations(&fx);
}

#[tokio::test]
async fn throttling_is_retried_honouring_retry_after() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({}));
    fx.fault(
        "GET",
        "/1.3/zone",
        &[Fault::Throttle(1), Fault::Unavailable],
    );
    let start = Instant::now();
    let zones = p.get_zones().await.unwrap();
    let took = start.elapsed();
    assert_eq!(zones.len(), 2);
    assert!(
        took >= Duration::from_secs(1),
        "Retry-After: 1 was honoured: {took:?}"
    );
    assert!(took < Duration::from_secs(4), "{took:?}");
    assert_eq!(
        fx.calls().iter().filter(|c| *c == "GET /1.3/zone").count(),
        3
    );

    // Retries run out: a throttling error naming the attempts.
    let p = provider(&fx, json!({"api": {"retries": 1}}));
    fx.fault(
        "GET",
        "/1.3/plan",
        &[Fault::Throttle(0), Fault::Throttle(0), Fault::Throttle(0)],
    );
    let e = p.get_plans().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled);
    let text = e.to_string();
    assert!(
        text.starts_with("upcloud: get-plans: throttled by the UpCloud API (HTTP 429"),
        "{text}"
    );
    assert!(
        text.contains("gave up after 2 attempts (api.retries = 1)"),
        "{text}"
    );

    // A create that was throttled is sent again (a 429 means it was not processed).
    let p = provider(&fx, json!({}));
    fx.fault("POST", "/1.3/server", &[Fault::Throttle(0)]);
    let s = p.create_server(&spec("web-09"), &owner()).await.unwrap();
    assert_eq!(s.status, ServerStatus::Running);
    assert_eq!(p.list_servers().await.unwrap().len(), 1);
    no_violations(&fx);
}

#[tokio::test]
async fn a_slow_answer_is_a_timeout_naming_the_operation_and_server() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({"api": {"timeout": 1}}));
    let s = p.create_server(&spec("web-01"), &owner()).await.unwrap();
    fx.fault(
        "POST",
        &format!("/1.3/server/{}/stop", s.id),
        &[Fault::Slow(Duration::from_secs(3))],
    );
    let start = Instant::now();
    let e = p.stop_server(&s.id).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_millis(2900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(e.kind, ErrorKind::Timeout);
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("upcloud: stop-server {}: no answer to POST", s.id)),
        "{text}"
    );
    assert!(text.contains("within 1s (api.timeout)"), "{text}");
}

#[test]
fn bad_settings_fail_before_any_call() {
    let fx = Fixture::start();
    let e = build(settings(&fx, json!({"parallelism": 0, "templatez": {}})))
        .err()
        .unwrap();
    assert_eq!(e.kind, ErrorKind::Invalid);
    let text = e.to_string();
    assert!(text.starts_with("upcloud: load:"), "{text}");
    assert!(text.contains("providers.upcloud.parallelism"), "{text}");
    assert!(
        text.contains("providers.upcloud.templatez: unknown setting"),
        "{text}"
    );
    assert!(!text.contains(PASSWORD));
    assert!(fx.calls().is_empty());
}

/// The real UpCloud API: create the smallest server, read it, delete it. Runs only with
/// UPCLOUD_USERNAME/UPCLOUD_PASSWORD set (it costs a few cents); UPCLOUD_ZONE picks the zone.
#[tokio::test]
async fn real_cloud_create_info_delete() {
    if std::env::var_os("UPCLOUD_USERNAME").is_none() {
        println!(
            "SKIPPED: real UpCloud test (set UPCLOUD_USERNAME and UPCLOUD_PASSWORD to run it)"
        );
        return;
    }
    let p = build(json!({"poll_interval_ms": 3000})).unwrap();
    let host = format!("prov-test-{}", std::process::id());
    let mut s = spec(&host);
    s.zone = std::env::var("UPCLOUD_ZONE").unwrap_or_else(|_| "fi-hel1".into());
    s.storage = json!({"size": 25});
    s.firewall_rules = vec![];
    s.ssh_keys = vec![];
    let created = p.create_server(&s, &owner()).await.unwrap();
    let info = p.get_server_info(&created.id).await;
    // Delete before judging anything: never leave a billed server behind.
    p.delete_server(&created.id).await.unwrap();
    let info = info.unwrap().expect("the server existed");
    assert_eq!(info.hostname, host);
    assert_eq!(info.tags["prov:workspace"], "ws");
    assert_eq!(info.status, ServerStatus::Running);
    assert_eq!(p.get_server_info(&created.id).await.unwrap(), None);
}

#[tokio::test]
async fn refresh_sees_an_address_changed_outside_prov() {
    use prov_engine::drift::{observe, DriftKind, RefreshOptions};
    let fx = Fixture::start();
    let st = settings(&fx, json!({}));
    let mut reg = prov_engine::registry::Registry::new();
    reg.provider("upcloud", upcloud::factory());
    let bound = Arc::new(reg.bind(
        std::env::temp_dir(),
        json!({ "upcloud": st }).as_object().unwrap(),
    ));
    let p = bound.provider("upcloud").unwrap();
    let mut sp = spec("web-01");
    sp.firewall_rules.clear();
    let info = p.create_server(&sp, &owner()).await.unwrap();
    // The record apply writes for it.
    let rec: prov_state::ResourceRecord = serde_json::from_value(json!({
        "address": "server.web-01", "kind": "server", "implementation": "upcloud",
        "provider_id": info.id, "config": null,
        "attributes": {"hostname": "web-01", "plan": sp.plan, "zone": sp.zone, "os": sp.os,
                       "tags": {"env": "test"}, "firewall_rules": []},
        "outputs": prov_engine::records::server_outputs(&info),
        "dependencies": [], "updated_at": 0, "sensitive_paths": []
    }))
    .unwrap();
    let mut snap = prov_state::Snapshot::default();
    snap.resources.insert(rec.address.clone(), rec);
    let snap = Arc::new(snap);
    let opts = RefreshOptions::default();
    let obs = observe(snap.clone(), &bound, &opts, None).await;
    assert!(obs.iter().all(|o| o.drift.is_empty()), "{obs:?}");

    fx.set_address(&info.id, "utility", "10.3.9.9");
    let obs = observe(snap, &bound, &opts, None).await;
    let d = &obs[0].drift;
    let [prov_engine::drift::Drift {
        kind: DriftKind::Changed(diffs),
        ..
    }] = d.as_slice()
    else {
        panic!("{d:?}")
    };
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0].path, "private_ip");
    assert_eq!(diffs[0].after, Some(json!("10.3.9.9")));
    assert_eq!(
        obs[0].refreshed.as_ref().unwrap().outputs["private_ip"],
        "10.3.9.9"
    );
    p.delete_server(&info.id).await.unwrap();
    no_violations(&fx);
}

#[tokio::test]
async fn a_batched_read_lists_servers_and_addresses_instead_of_one_call_per_server() {
    let fx = Fixture::start();
    let p = provider(&fx, json!({}));
    assert!(
        p.read_batch() > 1,
        "refresh reads upcloud servers in batches"
    );
    let mut plain = spec("plain");
    plain.firewall_rules.clear();
    let mut ids = Vec::new();
    for host in ["a", "b", "c"] {
        let mut s = plain.clone();
        s.hostname = host.into();
        ids.push(p.create_server(&s, &owner()).await.unwrap().id);
    }
    let walled = p.create_server(&spec("walled"), &owner()).await.unwrap().id;
    ids.push(walled.clone());
    ids.push("00ffffff-1111-4222-8333-444455556666".into());
    let mut one_by_one = Vec::new();
    for id in &ids {
        one_by_one.push(p.get_server_info(id).await.unwrap());
    }
    let before = fx.calls().len();
    let batched: Vec<_> = p
        .get_servers_info(&ids)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(
        batched, one_by_one,
        "the same answers as one read per server"
    );
    assert!(batched[4].is_none(), "an unknown server is absent");
    let calls: Vec<String> = fx.calls()[before..].to_vec();
    // The list and the addresses for all; only the server with a firewall on is read alone.
    assert!(calls.contains(&"GET /1.3/server".to_string()), "{calls:?}");
    assert!(
        calls.contains(&"GET /1.3/ip_address".to_string()),
        "{calls:?}"
    );
    for id in &ids[..3] {
        assert!(
            !calls.iter().any(|c| c.contains(id.as_str())),
            "{id} answered by the listing: {calls:?}"
        );
    }
    assert!(
        calls.iter().any(|c| c.contains(walled.as_str())),
        "{calls:?}"
    );
    no_violations(&fx);
}
