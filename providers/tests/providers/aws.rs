//! Integration tests of the aws provider against moto (`PROV_TEST_MOTO`): lifecycle with firewall
//! rules, tags and a key pair (checked in moto through the SDK), power operations, in-place
//! updates, deletion leaving nothing behind, and the error paths (not found, bad settings, a dead
//! endpoint). Each test uses its own region: moto keeps one world per region and tests run in
//! parallel.

use aws_sdk_ec2::types::Filter;
use prov_engine::registry::ExtContext;
use prov_engine::traits::{
    ErrorKind, FirewallRule, Ownership, Provider, ServerSpec, ServerStatus, ServerUpdate,
};
use prov_providers::aws;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

/// moto's endpoint, or None to skip — unless PROV_REQUIRE_MOTO=1, where a missing moto fails.
fn moto() -> Option<String> {
    match std::env::var("PROV_TEST_MOTO") {
        Ok(u) if !u.is_empty() => Some(u),
        _ if std::env::var("PROV_REQUIRE_MOTO").as_deref() == Ok("1") => {
            panic!("PROV_REQUIRE_MOTO=1 but PROV_TEST_MOTO is not set")
        }
        _ => {
            eprintln!("SKIPPED: no moto (set PROV_TEST_MOTO=http://127.0.0.1:PORT after starting moto_server)");
            None
        }
    }
}

const SECRET: &str = "moto-secret-never-shown";

fn settings(endpoint: &str, region: &str) -> Value {
    json!({
        "region": region,
        "endpoint_url": endpoint,
        "auth": {"method": "api_key", "api_key": "testing", "api_secret": SECRET},
        "api": {"timeout": 20, "retries": 2},
        "parallelism": 3,
    })
}

fn provider(settings: Value) -> Arc<dyn Provider> {
    let ctx = ExtContext {
        workspace_dir: std::env::temp_dir(),
        workspace_name: "ws".into(),
        name: "aws".into(),
        settings,
    };
    aws::factory()(&ctx).expect("aws provider builds")
}

/// An SDK client of its own, to look at moto independently of the provider.
async fn sdk(endpoint: &str, region: &str) -> aws_sdk_ec2::Client {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_ec2::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .load()
        .await;
    aws_sdk_ec2::Client::new(&conf)
}

fn rule(dir: &str, port: Option<&str>, addr: Option<&str>) -> FirewallRule {
    FirewallRule {
        direction: dir.into(),
        protocol: "tcp".into(),
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

fn spec(hostname: &str, zone: &str) -> ServerSpec {
    ServerSpec {
        hostname: hostname.into(),
        plan: "t3.micro".into(),
        zone: zone.into(),
        os: "amazon-linux-2".into(),
        ssh_keys: vec![],
        tags: BTreeMap::from([
            ("role".to_string(), "web".to_string()),
            ("env".to_string(), "test".to_string()),
        ]),
        firewall_rules: vec![
            rule("ingress", Some("443"), None),
            rule("ingress", Some("22"), Some("10.0.0.0/8")),
        ],
        storage: Value::Null,
        network: Value::Null,
    }
}

fn owner(hostname: &str) -> Ownership {
    Ownership {
        workspace: "ws".into(),
        address: format!("server.{hostname}"),
    }
}

/// A fresh OpenSSH public key.
fn public_key() -> String {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id");
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen runs");
    assert!(out.status.success(), "{out:?}");
    std::fs::read_to_string(key.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

/// Ingress permissions of a security group as (from_port, cidr) pairs.
async fn ingress(c: &aws_sdk_ec2::Client, group: &str) -> Vec<(i32, String)> {
    let out = c
        .describe_security_groups()
        .group_ids(group)
        .send()
        .await
        .unwrap();
    let mut v: Vec<(i32, String)> = out.security_groups()[0]
        .ip_permissions()
        .iter()
        .flat_map(|p| {
            p.ip_ranges().iter().map(|r| {
                (
                    p.from_port().unwrap_or(-1),
                    r.cidr_ip().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_firewall_tags_key_pair_and_clean_delete() {
    let Some(url) = moto() else { return };
    let region = "us-west-2";
    let p = provider(settings(&url, region));
    let c = sdk(&url, region).await;
    assert_eq!(p.parallelism(), Some(3));

    let mut s = spec("life-01", "us-west-2a");
    s.ssh_keys = vec![public_key()];
    s.firewall_rules.push(rule("egress", Some("443"), None));
    let info = p.create_server(&s, &owner("life-01")).await.unwrap();
    assert_eq!(info.status, ServerStatus::Running);
    assert_eq!(info.hostname, "life-01");
    assert_eq!(info.plan, "t3.micro");
    assert_eq!(info.zone, "us-west-2a");
    assert_eq!(info.os, "amazon-linux-2");
    assert!(info.public_ip.is_some() && info.private_ip.is_some());
    assert_eq!(
        info.firewall_rules, s.firewall_rules,
        "rules read back as configured"
    );
    let id = info.id.clone();

    // In moto, through the SDK: the instance's tags, its security group's rules, the key pair.
    let out = c
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let inst = &out.reservations()[0].instances()[0];
    let tags: BTreeMap<&str, &str> = inst
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags.get("prov:workspace"), Some(&"ws"));
    assert_eq!(tags.get("prov:address"), Some(&"server.life-01"));
    assert_eq!(tags.get("role"), Some(&"web"));
    assert_eq!(tags.get("Name"), Some(&"life-01"));
    assert_eq!(inst.key_name(), Some("prov-ws-life-01"));
    let group = inst.security_groups()[0].group_id().unwrap().to_string();
    assert_eq!(
        ingress(&c, &group).await,
        vec![
            (22, "10.0.0.0/8".to_string()),
            (443, "0.0.0.0/0".to_string())
        ]
    );
    let sg = c
        .describe_security_groups()
        .group_ids(&group)
        .send()
        .await
        .unwrap();
    let sg = &sg.security_groups()[0];
    assert_eq!(sg.group_name(), Some("prov-ws-life-01"));
    assert!(sg
        .tags()
        .iter()
        .any(|t| t.key() == Some("prov:address") && t.value() == Some("server.life-01")));
    let egress: Vec<i32> = sg
        .ip_permissions_egress()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    assert_eq!(
        egress,
        vec![443],
        "the default allow-all egress rule is replaced"
    );
    let keys = c.describe_key_pairs().send().await.unwrap();
    assert!(keys
        .key_pairs()
        .iter()
        .any(|k| k.key_name() == Some("prov-ws-life-01")));

    // info / list
    let got = p.get_server_info(&id).await.unwrap().unwrap();
    assert_eq!(got.tags.get("role").map(String::as_str), Some("web"));
    assert!(
        !got.tags.contains_key("Name"),
        "the hostname's Name tag is not a user tag"
    );
    let list = p.list_servers().await.unwrap();
    assert!(list.iter().any(|x| x.id == id && x.hostname == "life-01"));
    let access = p.get_ssh_access(&id).await.unwrap();
    assert_eq!(access.user, "ec2-user");
    assert_eq!(access.port, 22);
    assert_eq!(Some(access.host), got.public_ip);

    // stop / start / reboot
    p.stop_server(&id).await.unwrap();
    assert_eq!(
        p.get_server_info(&id).await.unwrap().unwrap().status,
        ServerStatus::Stopped
    );
    p.start_server(&id).await.unwrap();
    assert_eq!(
        p.get_server_info(&id).await.unwrap().unwrap().status,
        ServerStatus::Running
    );
    p.reboot_server(&id).await.unwrap();
    assert_eq!(
        p.get_server_info(&id).await.unwrap().unwrap().status,
        ServerStatus::Running
    );

    // configure-firewall replaces the rules.
    let new_rules = vec![rule("ingress", Some("8080-8090"), Some("192.168.0.0/16"))];
    p.configure_firewall(&id, &new_rules).await.unwrap();
    assert_eq!(
        ingress(&c, &group).await,
        vec![(8080, "192.168.0.0/16".to_string())]
    );
    assert_eq!(
        p.get_server_info(&id)
            .await
            .unwrap()
            .unwrap()
            .firewall_rules,
        new_rules
    );

    // update-server: tags in place (one removed, one changed, one added) and a resize.
    let before = ServerSpec {
        firewall_rules: new_rules.clone(),
        ..s.clone()
    };
    let mut after = before.clone();
    after.tags.remove("env");
    after.tags.insert("role".into(), "api".into());
    after.tags.insert("team".into(), "core".into());
    after.plan = "t3.small".into();
    let updated = p
        .update_server(
            &id,
            &ServerUpdate {
                before: before.clone(),
                after: after.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.plan, "t3.small");
    assert_eq!(updated.status, ServerStatus::Running);
    let user_tags: BTreeMap<String, String> = updated
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("prov:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(user_tags, after.tags);
    let out = c
        .describe_instances()
        .instance_ids(&id)
        .send()
        .await
        .unwrap();
    let inst = &out.reservations()[0].instances()[0];
    assert_eq!(inst.instance_type().map(|t| t.as_str()), Some("t3.small"));
    assert!(!inst.tags().iter().any(|t| t.key() == Some("env")));

    // A zone change is not an in-place update.
    let mut moved = after.clone();
    moved.zone = "us-west-2b".into();
    let e = p
        .update_server(
            &id,
            &ServerUpdate {
                before: after.clone(),
                after: moved,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::Invalid);
    assert!(e.message.contains("zone"), "{e}");

    // delete: no instance, security group or key pair is left.
    p.delete_server(&id).await.unwrap();
    assert!(p.get_server_info(&id).await.unwrap().is_none());
    let out = c
        .describe_instances()
        .filters(
            Filter::builder()
                .name("tag:prov:address")
                .values("server.life-01")
                .build(),
        )
        .send()
        .await
        .unwrap();
    for i in out.reservations().iter().flat_map(|r| r.instances()) {
        assert_eq!(
            i.state().and_then(|s| s.name()).map(|n| n.as_str()),
            Some("terminated")
        );
    }
    let groups = c.describe_security_groups().send().await.unwrap();
    assert!(
        !groups
            .security_groups()
            .iter()
            .any(|g| g.group_id() == Some(group.as_str())),
        "security group deleted"
    );
    let keys = c.describe_key_pairs().send().await.unwrap();
    assert!(!keys
        .key_pairs()
        .iter()
        .any(|k| k.key_name() == Some("prov-ws-life-01")));
    // The delete of something gone is a typed not-found.
    let e = p.delete_server(&id).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_instances_are_not_found_naming_provider_operation_and_server() {
    let Some(url) = moto() else { return };
    let p = provider(settings(&url, "eu-west-1"));
    let ghost = "i-0123456789abcdef0";
    assert!(p.get_server_info(ghost).await.unwrap().is_none());
    for (op, e) in [
        ("stop-server", p.stop_server(ghost).await.unwrap_err()),
        ("start-server", p.start_server(ghost).await.unwrap_err()),
        ("delete-server", p.delete_server(ghost).await.unwrap_err()),
        (
            "configure-firewall",
            p.configure_firewall(ghost, &[]).await.unwrap_err(),
        ),
    ] {
        assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("aws: {op} {ghost}:")),
            "error names provider, operation and server: {text}"
        );
        assert!(!text.contains(SECRET));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plans_zones_pricing_and_connection() {
    let Some(url) = moto() else { return };
    let region = "ap-southeast-1";
    let p = provider(settings(&url, region));
    let t = p.test_connection().await.unwrap();
    assert!(t.success, "{t:?}");
    assert!(t.message.contains(region), "{t:?}");
    let zones = p.get_zones().await.unwrap();
    assert!(!zones.is_empty());
    assert!(
        zones.iter().all(|z| z.name.starts_with(region)),
        "{zones:?}"
    );
    let plans = p.get_plans().await.unwrap();
    let micro = plans
        .iter()
        .find(|x| x.name == "t3.micro")
        .expect("t3.micro");
    assert_eq!((micro.cores, micro.memory_mb), (2, 1024));
    assert!(
        plans.len() > 100,
        "DescribeInstanceTypes lists {} types",
        plans.len()
    );
    let prices = p.get_pricing().await.unwrap();
    let small = prices.iter().find(|x| x.plan == "t3.small").unwrap();
    assert_eq!(small.currency, "USD");
    assert!(small.hourly > 0.0 && (small.monthly - small.hourly * 730.0).abs() < 0.01);
    // The price table names real instance types (moto's catalogue is EC2's), and a server in
    // the table's region finds its price; other regions' prices are not in the table.
    let offered: std::collections::HashSet<&str> = plans.iter().map(|x| x.name.as_str()).collect();
    let missing: Vec<&str> = prices
        .iter()
        .map(|x| x.plan.as_str())
        .filter(|t| !offered.contains(t))
        .collect();
    assert!(missing.is_empty(), "not EC2 instance types: {missing:?}");
    use prov_engine::plan::cost::find_price;
    assert_eq!(
        find_price(&prices, "m6i.4xlarge", "us-east-1b")
            .unwrap()
            .monthly,
        560.64
    );
    assert!(find_price(&prices, "m6i.4xlarge", "ap-southeast-1a").is_none());
    let info = p.info().await.unwrap();
    assert!(info.supported_os.contains(&"ubuntu-22.04".to_string()));
    assert!(info
        .supported_operations
        .contains(&"configure-firewall".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_is_refused_before_any_call() {
    // No moto needed: nothing here reaches the network (the endpoint is a dead port).
    let p = provider(settings("http://127.0.0.1:9", "us-east-1"));
    let o = owner("bad");
    let mut deny = spec("bad", "us-east-1a");
    deny.firewall_rules[0].action = "deny".into();
    let elsewhere = spec("bad", "eu-west-1a");
    let mut os = spec("bad", "us-east-1a");
    os.os = "windows-95".into();
    let mut two_keys = spec("bad", "us-east-1a");
    two_keys.ssh_keys = vec!["ssh-ed25519 AAAA a".into(), "ssh-ed25519 AAAA b".into()];
    for (s, needle) in [
        (deny, "only allow"),
        (elsewhere, "not in region \"us-east-1\""),
        (os, "unknown os \"windows-95\""),
        (two_keys, "one key pair"),
    ] {
        let e = p.create_server(&s, &o).await.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid, "{e}");
        assert!(e.to_string().starts_with("aws: create-server bad:"), "{e}");
        assert!(e.message.contains(needle), "{needle:?} in {e}");
    }
}

#[test]
fn bad_settings_name_the_key() {
    let ctx = |settings: Value| ExtContext {
        workspace_dir: std::env::temp_dir(),
        workspace_name: "ws".into(),
        name: "aws".into(),
        settings,
    };
    for (settings, needle) in [
        (
            json!({"region": "us-east-1", "regoin": "x"}),
            "providers.aws.regoin: unknown setting",
        ),
        (json!({}), "providers.aws.region: missing definition for `region`"),
        (
            json!({"region": 5}),
            "providers.aws.region: contract broken",
        ),
        (
            json!({"region": "us-east-1", "endpoint_url": "localhost:5000"}),
            "providers.aws.endpoint_url: contract broken by the value of `endpoint_url`: expected an http:// or https:// URL",
        ),
        (
            json!({"region": "us-east-1", "api": {"base_url": "http://x:1", "retries": -1}}),
            "providers.aws.api.retries",
        ),
        (
            json!({"region": "us-east-1", "auth": {"method": "api_key", "api_key": "AKID"}}),
            "providers.aws.auth: missing definition for `api_secret`",
        ),
    ] {
        let e = match aws::factory()(&ctx(settings.clone())) {
            Ok(_) => panic!("{settings} should be refused"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert!(e.to_string().contains(needle), "{needle:?} in {e}");
    }
    // validate-config reports the same problems without building anything.
    let p = provider(json!({"region": "us-east-1"}));
    let v = block_on(p.validate_config(&json!({"region": "us-east-1", "zone": "a"}))).unwrap();
    assert!(
        v.errors.iter().any(|e| e.contains("providers.aws.zone")),
        "{v:?}"
    );
    let v = block_on(p.validate_config(&json!({"region": "us-east-1"}))).unwrap();
    assert!(v.valid() && !v.warnings.is_empty(), "{v:?}");
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_endpoint_is_a_clear_error_naming_provider_and_operation() {
    // A port nothing listens on: connection refused, retried, then reported; no secret shown.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut s = settings(&format!("http://127.0.0.1:{port}"), "us-east-1");
    s["api"] = json!({"base_url": format!("http://127.0.0.1:{port}"), "timeout": 2, "retries": 1});
    let p = provider(s);
    let started = std::time::Instant::now();
    let e = p.test_connection().await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let text = e.to_string();
    assert!(text.starts_with("aws: test-connection:"), "{text}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(
        matches!(e.kind, ErrorKind::Failed | ErrorKind::Timeout),
        "{e:?}"
    );
    assert!(!text.contains(SECRET), "{text}");
    let e = p.get_server_info("i-0123").await.unwrap_err();
    assert!(
        e.to_string().starts_with("aws: get-server-info i-0123:"),
        "{e}"
    );
}

/// A scripted EC2 endpoint for the failure modes moto cannot produce (throttling, rejected
/// credentials, silence): answers every request with `status` and the EC2 error document for
/// `code`, or never answers when `code` is None. Returns its URL and a request counter.
fn scripted_endpoint(
    status: u16,
    code: Option<&'static str>,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            seen.fetch_add(1, Ordering::SeqCst);
            let Some(code) = code else {
                // Hold the connection open and say nothing.
                std::thread::spawn(move || {
                    std::thread::sleep(std::time::Duration::from_secs(30));
                    drop(conn);
                });
                continue;
            };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let doc = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>scripted {code}</Message></Error></Errors><RequestID>r-1</RequestID></Response>"
            );
            let _ = write!(
                conn,
                "HTTP/1.1 {status} Scripted\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{doc}",
                doc.len()
            );
        }
    });
    (url, count)
}

fn scripted_provider(url: &str, timeout: u64, retries: u64) -> Arc<dyn Provider> {
    let mut s = settings(url, "us-east-1");
    s["api"] = json!({"base_url": url, "timeout": timeout, "retries": retries});
    provider(s)
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_with_backoff_then_reported_as_throttled() {
    let (url, count) = scripted_endpoint(503, Some("RequestLimitExceeded"));
    let p = scripted_provider(&url, 10, 2);
    let e = p.stop_server("i-0123").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled, "{e}");
    assert!(e.to_string().starts_with("aws: stop-server i-0123:"), "{e}");
    assert!(e.message.contains("RequestLimitExceeded"), "{e}");
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        3,
        "one call and api.retries = 2 retries"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rejected_credentials_are_an_auth_error_without_the_secret() {
    let (url, count) = scripted_endpoint(401, Some("AuthFailure"));
    let p = scripted_provider(&url, 10, 3);
    let e = p.list_servers().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Auth, "{e}");
    assert!(e.to_string().starts_with("aws: list-servers:"), "{e}");
    assert!(e.message.contains("providers.aws.auth"), "{e}");
    assert!(!e.to_string().contains(SECRET));
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "auth failures are not retried"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_endpoint_times_out_after_api_timeout() {
    let (url, _) = scripted_endpoint(200, None);
    let p = scripted_provider(&url, 1, 0);
    let started = std::time::Instant::now();
    let e = p.get_zones().await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Timeout, "{e}");
    assert!(e.to_string().starts_with("aws: get-zones:"), "{e}");
    assert!(e.message.contains("api.timeout"), "{e}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_of_500_servers_is_one_batched_read_matching_single_reads() {
    let Some(url) = moto() else { return };
    let region = "ap-northeast-2";
    let p = provider(settings(&url, region));
    assert!(p.read_batch() >= 1000, "a whole workspace in one call");
    let c = sdk(&url, region).await;
    let image = c
        .describe_images()
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .find_map(|i| i.image_id().map(str::to_string))
        .expect("moto lists images");
    let tags = |workspace: Option<&str>| {
        let mut spec = aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("prov:hostname")
                    .value("bench")
                    .build(),
            );
        if let Some(w) = workspace {
            spec = spec.tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("prov:workspace")
                    .value(w)
                    .build(),
            );
        }
        spec.build()
    };
    let run = |count: i32, workspace: Option<&'static str>| {
        let c = c.clone();
        let image = image.clone();
        let spec = tags(workspace);
        async move {
            c.run_instances()
                .image_id(image)
                .instance_type(aws_sdk_ec2::types::InstanceType::T2Micro)
                .min_count(count)
                .max_count(count)
                .tag_specifications(spec)
                .send()
                .await
                .unwrap()
                .instances()
                .iter()
                .filter_map(|i| i.instance_id().map(str::to_string))
                .collect::<Vec<_>>()
        }
    };
    // 500 servers prov made (two workspaces' tags), one it adopted (no tag), one terminated.
    let mut ids = run(450, Some("w1")).await;
    ids.extend(run(50, Some("w2")).await);
    let adopted = run(1, None).await;
    let gone = run(1, Some("w1")).await;
    c.terminate_instances()
        .instance_ids(&gone[0])
        .send()
        .await
        .unwrap();
    ids.extend(adopted.iter().cloned());
    ids.extend(gone.iter().cloned());
    ids.push("i-0123456789abcdef0".into());

    let batch = p.get_servers_info(&ids).await;
    assert_eq!(batch.len(), ids.len(), "one answer per id, in order");
    let found = batch.iter().filter(|r| matches!(r, Ok(Some(_)))).count();
    assert_eq!(found, 501, "500 tagged and the adopted one");
    assert!(matches!(batch[ids.len() - 2], Ok(None)), "terminated");
    assert!(matches!(batch[ids.len() - 1], Ok(None)), "unknown");
    // The same answers as asking about each server alone (a sample, and every special one).
    for (i, (id, b)) in ids.iter().zip(&batch).enumerate() {
        if i % 25 != 0 && i < 500 {
            continue;
        }
        let single = p.get_server_info(id).await.unwrap();
        assert_eq!(b.as_ref().unwrap(), &single, "{id}");
        if let Some(info) = single {
            assert_eq!(info.id, *id);
        }
    }
}
