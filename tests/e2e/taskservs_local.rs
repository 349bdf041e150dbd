//! Catalog taskservs for real through the `prov` binary on a local server (root: a network
//! namespace with its own sshd, so taskservs go over SSH): redis and etcd installed from Debian
//! packages and health-checked, a settings change planned as configure and applied (redis
//! restarted with it), the service stopped out of band showing as drift, redis uninstalled,
//! everything destroyed. Skipped without root/ip/nft/sshd/apt; fails then with
//! PROV_REQUIRE_ROOT_NET=1.

use super::*;
use serde_json::Value;

struct Destroy<'a>(&'a Ws);

impl Drop for Destroy<'_> {
    fn drop(&mut self) {
        let _ = self.0.prov(&["destroy", "--auto-approve"]);
    }
}

fn runnable(test: &str) -> bool {
    super::local::root_net_with(test, &["apt-get"])
}

fn config(maxmemory: &str, with_redis: bool) -> String {
    let redis = if with_redis {
        format!(
            r#"redis = {{
          settings = {{ maxmemory = "{maxmemory}", password = "s3cret-pw" }},
          sensitive = ["settings.password"],
          depends_on = ["etcd"],
        }},"#
        )
    } else {
        String::new()
    };
    format!(
        r#"{{
  providers = {{
    local = {{ bridge = "pvtask0", subnet = "10.213.91.0/24", defaults = {{ plan = "small", zone = "local" }} }},
  }},
  servers = {{
    db = {{
      provider = "local",
      taskservs = {{
        etcd = {{ settings = {{ snapshot_count = 5000 }} }},
        {redis}
      }},
    }},
    # A second sandbox with its own redis: same paths on the server, apart on this machine.
    cache = {{
      provider = "local",
      taskservs = {{
        redis = {{ settings = {{ maxmemory = "32mb", password = "s3cret-pw" }}, sensitive = ["settings.password"] }},
      }},
    }},
  }},
  outputs = {{ redis = "${{taskserv.db.etcd.client_url}}" }},
}}"#
    )
}

/// The record as `prov state show ADDR --json` prints it; null when it is not in the state.
fn record(ws: &Ws, address: &str) -> Value {
    let r = ws.prov(&["state", "show", address, "--json"]);
    if r.code != 0 {
        return Value::Null;
    }
    serde_json::from_str(&r.stdout).unwrap()
}

fn redis_cli(ip: &str, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", ip, "-p", "6379"])
        .args(args)
        .env("REDISCLI_AUTH", "s3cret-pw")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn redis_and_etcd_on_a_local_server() {
    if !runnable("redis_and_etcd_on_a_local_server") {
        return;
    }
    let ws = Ws::new(&config("64mb", true));
    let _destroy = Destroy(&ws);
    ws.prov(&["plan"])
        .code(0)
        .has("+ taskserv.db.etcd (etcd)")
        .has("+ taskserv.db.redis (redis)")
        .lacks("s3cret-pw");
    ws.prov(&["apply", "--auto-approve"])
        .ok()
        .has("Apply complete: 5 succeeded")
        .has("taskserv.db.redis: health check passed")
        .has("taskserv.cache.redis: health check passed")
        .has("taskserv.db.etcd: health check passed")
        .lacks("s3cret-pw");
    let server = record(&ws, "server.db");
    let ip = server["outputs"]["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    // Where each sandbox's server paths land on this machine.
    let root = |name: &str| {
        let dir = record(&ws, &format!("server.{name}"))["outputs"]["extra"]["dir"]
            .as_str()
            .unwrap()
            .to_string();
        Path::new(&dir).join("root")
    };
    let cache_ip = record(&ws, "server.cache")["outputs"]["private_ip"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(ip, cache_ip);
    assert_eq!(redis_cli(&cache_ip, &["ping"]), "PONG");
    assert_eq!(
        redis_cli(&cache_ip, &["config", "get", "maxmemory"]),
        format!("maxmemory\n{}", 32 * 1024 * 1024)
    );
    for name in ["db", "cache"] {
        assert!(
            root(name).join("etc/prov/redis/redis.conf").is_file(),
            "{name}: {}",
            root(name).display()
        );
    }
    assert!(!Path::new("/etc/prov/redis").exists());
    let redis = record(&ws, "taskserv.db.redis");
    assert!(
        redis["outputs"]["version"]
            .as_str()
            .unwrap()
            .starts_with('7'),
        "{redis}"
    );
    assert_eq!(redis["outputs"]["files_hash"].as_str().unwrap().len(), 64);
    assert_eq!(redis["outputs"]["endpoint"], format!("{ip}:6379"));
    assert_eq!(redis_cli(&ip, &["ping"]), "PONG");
    ws.prov(&["output"]).ok().has(&format!("http://{ip}:2379"));
    ws.prov(&["plan", "--detailed-exitcode"])
        .ok()
        .has("No changes.");
    let st = ws.prov(&["taskserv", "status", "--json"]).ok().stdout;
    let st: Value = serde_json::from_str(&st).unwrap();
    for t in st.as_array().unwrap() {
        assert_eq!(t["result"]["running"], true, "{t}");
        assert_eq!(t["result"]["healthy"], true, "{t}");
    }

    // A settings change: the plan says configure, apply restarts redis with it.
    ws.write(&config("96mb", true));
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("~ taskserv.db.redis (redis) will be configured (configure, restarts it)")
        .has("Plan: 0 to add, 1 to change, 0 to replace, 0 to destroy.");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert_eq!(
        redis_cli(&ip, &["config", "get", "maxmemory"]),
        format!("maxmemory\n{}", 96 * 1024 * 1024)
    );
    let after = record(&ws, "taskserv.db.redis");
    assert_ne!(
        after["outputs"]["files_hash"],
        redis["outputs"]["files_hash"]
    );

    // Stopped out of band: drift says so.
    let pid = std::fs::read_to_string(root("db").join("var/lib/prov/redis/redis.pid")).unwrap();
    Command::new("kill").arg(pid.trim()).status().unwrap();
    wait_gone(&pid);
    ws.prov(&["drift"])
        .code(2)
        .has("taskserv.db.redis: stopped outside prov")
        .lacks("taskserv.cache.redis");
    assert_eq!(redis_cli(&cache_ip, &["ping"]), "PONG");

    // Removed from the configuration: uninstalled; etcd stays.
    ws.write(&config("96mb", false));
    ws.prov(&["plan"]).has("- taskserv.db.redis");
    ws.prov(&["apply", "--auto-approve"]).ok();
    assert!(!root("db").join("etc/prov/redis").exists());
    assert!(root("cache").join("etc/prov/redis/redis.conf").is_file());
    assert_eq!(redis_cli(&cache_ip, &["ping"]), "PONG");
    ws.prov(&["taskserv", "status"])
        .ok()
        .has("taskserv.db.etcd")
        .has("taskserv.cache.redis")
        .lacks("taskserv.db.redis");
    let db_root = root("db");
    ws.prov(&["destroy", "--auto-approve"]).ok();
    assert!(!db_root.exists());
}
