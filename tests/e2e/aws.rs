//! The aws-on-moto example end to end over the built binary: apply of two EC2 servers with
//! firewall rules, `prov server` verbs, an in-place firewall edit, destroy — and moto (asked
//! through the SDK) holds no instance or security group of the workspace afterwards.

use super::*;
use prov_engine::registry::ExtContext;
use serde_json::json;

/// Its own region: moto keeps one world per region and tests run in parallel.
const REGION: &str = "ca-central-1";

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

/// Removes what an earlier, interrupted run of this test left in REGION (CI's moto is fresh;
/// a developer's may not be).
fn sweep(url: &str) {
    let p = provider(url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        use prov_engine::traits::Provider;
        for s in p.list_servers().await.unwrap() {
            // Tagged by any workspace (its identity is the state's lineage): REGION is this test's.
            if s.tags.contains_key("prov:workspace") {
                p.delete_server(&s.id).await.unwrap();
            }
        }
        let c = p.client().await;
        let out = c.describe_security_groups().send().await.unwrap();
        for g in out.security_groups() {
            if g.group_name().is_some_and(|n| n.starts_with("prov-ws-")) {
                c.delete_security_group()
                    .group_id(g.group_id().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
    })
}

fn provider(url: &str) -> prov_providers::aws::AwsProvider {
    provider_in(url, REGION)
}

fn provider_in(url: &str, region: &str) -> prov_providers::aws::AwsProvider {
    let ctx = ExtContext {
        workspace_dir: std::env::temp_dir(),
        workspace_name: "ws".into(),
        name: "aws".into(),
        settings: json!({
            "region": region, "endpoint_url": url,
            "auth": {"method": "api_key", "api_key": "testing", "api_secret": "testing"},
        }),
    };
    prov_providers::aws::AwsProvider::new(&ctx).unwrap()
}

/// What moto holds in REGION: (live instances prov tagged, security groups named prov-ws-*).
fn in_moto(url: &str) -> (Vec<String>, Vec<String>) {
    let p = provider(url);
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = p.client().await;
        let out = c.describe_instances().send().await.unwrap();
        let instances = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| i.state().and_then(|s| s.name()).map(|n| n.as_str()) != Some("terminated"))
            .filter(|i| i.tags().iter().any(|t| t.key() == Some("prov:workspace")))
            .filter_map(|i| i.instance_id().map(str::to_string))
            .collect();
        let out = c.describe_security_groups().send().await.unwrap();
        let mut groups: Vec<String> = out
            .security_groups()
            .iter()
            .filter_map(|g| g.group_name())
            .filter(|n| n.starts_with("prov-ws-"))
            .map(str::to_string)
            .collect();
        groups.sort();
        (instances, groups)
    })
}

#[test]
fn example_applies_stops_starts_edits_firewall_in_place_and_destroys() {
    let Some(url) = moto() else { return };
    sweep(&url);
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws-on-moto/main.ncl"),
    )
    .unwrap();
    // Credentials from the settings' auth block this time: the secret must never be shown.
    let config = example.replace("us-east-1", REGION).replace(
        "parallelism = 4,",
        "parallelism = 4,\n    auth = { method = 'api_key, api_key = \"testing\", api_secret = \"e2e-secret-4711\" },",
    );
    assert!(config.contains("e2e-secret-4711"));
    let ws = Ws::new(&config);
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
    ];
    let prov = |args: &[&str]| ws.prov_env(args, &env).lacks("e2e-secret-4711");

    prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("+ server.web-01 (aws)")
        .has("+ server.db-01 (aws)")
        .has("Plan: 2 to add");
    prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 2 succeeded");
    prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    prov(&["state", "pull"]).ok().has("server.web-01");
    let (instances, groups) = in_moto(&url);
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert_eq!(
        groups,
        vec!["prov-ws-db-01".to_string(), "prov-ws-web-01".to_string()]
    );

    let list = prov(&["server", "list"]).ok();
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("aws") && l.ends_with("server.web-01")),
        "{}",
        list.stdout
    );
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("aws") && l.ends_with("server.db-01")),
        "{}",
        list.stdout
    );
    prov(&["server", "info", "web-01"])
        .ok()
        .has("allow ingress tcp port 22 from 10.0.0.0/8");

    let state = ws.state();
    prov(&["server", "stop", "web-01"]).ok().has("now stopped");
    let i: serde_json::Value =
        serde_json::from_str(&prov(&["server", "info", "web-01", "--json"]).ok().stdout).unwrap();
    assert_eq!(i["status"], "stopped");
    assert_eq!(ws.state(), state, "a stop leaves the state alone");
    prov(&["server", "start", "web-01"]).ok().has("now running");
    // ssh: host, port and the OS's user from get-ssh-access (printed, not run: moto's
    // addresses lead nowhere).
    let ssh = prov(&["server", "ssh", "web-01", "--print", "--", "uptime"])
        .ok()
        .stdout;
    assert!(
        ssh.starts_with("ssh -p 22 -o ConnectTimeout=10 ec2-user@")
            && ssh.trim_end().ends_with(" uptime"),
        "{ssh}"
    );
    prov(&["provider", "zones", "aws"])
        .ok()
        .has(&format!("{REGION}a"));
    prov(&["provider", "test", "aws"]).ok().has("connection ok");

    // Open 8443 instead of 443: an in-place update of the security group.
    ws.write(&config.replace(r#"port = "443", action"#, r#"port = "8443", action"#));
    prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.web-01 (aws) will be updated in place")
        .has(r#"+ firewall_rules[0] = {"action":"allow","direction":"ingress","port":"8443","protocol":"tcp"}"#)
        .has("0 to replace");
    prov(&["apply", "--auto-approve"]).ok();
    prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    prov(&["server", "info", "web-01"])
        .ok()
        .has("allow ingress tcp port 8443");
    let (after_edit, _) = in_moto(&url);
    assert_eq!(
        {
            let mut a = after_edit.clone();
            a.sort();
            a
        },
        {
            let mut b = instances.clone();
            b.sort();
            b
        },
        "no instance was replaced"
    );

    prov(&["destroy", "--auto-approve"]).ok().has("destroyed");
    let (instances, groups) = in_moto(&url);
    assert!(instances.is_empty(), "instances left: {instances:?}");
    assert!(groups.is_empty(), "security groups left: {groups:?}");
    let l: serde_json::Value =
        serde_json::from_str(&prov(&["server", "list", "--json"]).ok().stdout).unwrap();
    assert_eq!(l["servers"], json!([]));
}

#[test]
fn a_public_address_changed_outside_prov_updates_what_references_it() {
    let Some(url) = moto() else { return };
    // A region of its own (moto keeps one world per region; tests run in parallel).
    let region = "eu-west-3";
    let example = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws-on-moto/main.ncl"),
    )
    .unwrap();
    let config = example.replace("us-east-1", region).replace(
        r#"tags = { role = "db", env = "demo" }"#,
        r#"tags = { role = "db", env = "demo", web = "${server.web-01.public_ip}" }"#,
    );
    let ws = Ws::new(&config);
    let env = [
        ("AWS_ENDPOINT_URL", url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let prov = |args: &[&str]| ws.prov_env(args, &env);
    struct Destroy<'a>(&'a dyn Fn(&[&str]) -> Run);
    impl Drop for Destroy<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(&["destroy", "--auto-approve"]);
        }
    }
    let _destroy = Destroy(&prov);
    prov(&["apply", "--auto-approve"]).ok();
    let record = |addr: &str| -> serde_json::Value {
        serde_json::from_str(&prov(&["state", "show", addr, "--json"]).ok().stdout).unwrap()
    };
    let web = record("server.web-01");
    let id = web["provider_id"].as_str().unwrap().to_string();
    let old_ip = web["outputs"]["public_ip"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // An Elastic IP attached outside prov, through the EC2 API: the instance's public address changes.
    let p = provider_in(&url, region);
    let new_ip = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let c = p.client().await;
        let a = c.allocate_address().send().await.unwrap();
        c.associate_address()
            .instance_id(&id)
            .public_ip(a.public_ip().unwrap())
            .send()
            .await
            .unwrap();
        a.public_ip().unwrap().to_string()
    });
    assert_ne!(new_ip, old_ip);

    prov(&["drift"]).code(2).has("public_ip").has(&new_ip);
    prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ server.db-01 (aws) will be updated in place")
        .has(&new_ip);
    prov(&["apply", "--auto-approve"]).ok();
    let db = record("server.db-01");
    assert_eq!(db["attributes"]["tags"]["web"], new_ip.as_str());
    prov(&["plan", "--detailed-exitcode"]).ok();
}
