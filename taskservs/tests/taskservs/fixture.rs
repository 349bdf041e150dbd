//! Shared test helpers: a provider whose one server is reached through a given transport (the
//! taskserv only asks it for `transport`), requests, and a real sshd started on 127.0.0.1.

use async_trait::async_trait;
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, OutputFn, Ownership, PlanInfo,
    Pricing, Provider, ProviderInfo, ServerInfo, ServerSpec, ServerTarget, ServerUpdate, SshAccess,
    TaskservRequest, TransportSpec, Validation, Zone,
};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A provider with one server, `box-1`, reached through `spec` (None: the server is gone).
pub struct BoxProvider {
    pub spec: Mutex<Option<TransportSpec>>,
}

impl BoxProvider {
    pub fn new(spec: TransportSpec) -> Arc<BoxProvider> {
        Arc::new(BoxProvider {
            spec: Mutex::new(Some(spec)),
        })
    }
    pub fn local(root: &Path) -> Arc<BoxProvider> {
        BoxProvider::new(TransportSpec::Local {
            root: root.to_path_buf(),
            env: Default::default(),
        })
    }
}

fn unsupported<T>(op: &str) -> ExtResult<T> {
    Err(ExtError::new(
        "box",
        op,
        None,
        ErrorKind::Unsupported,
        "not in the fixture",
    ))
}

#[async_trait]
impl Provider for BoxProvider {
    fn name(&self) -> &str {
        "box"
    }
    async fn info(&self) -> ExtResult<ProviderInfo> {
        unsupported("info")
    }
    async fn validate_config(&self, _: &Value) -> ExtResult<Validation> {
        Ok(Validation::default())
    }
    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        unsupported("test-connection")
    }
    async fn create_server(&self, _: &ServerSpec, _: &Ownership) -> ExtResult<ServerInfo> {
        unsupported("create-server")
    }
    async fn delete_server(&self, _: &str) -> ExtResult<()> {
        unsupported("delete-server")
    }
    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        Ok(vec![])
    }
    async fn get_server_info(&self, _: &str) -> ExtResult<Option<ServerInfo>> {
        Ok(None)
    }
    async fn start_server(&self, _: &str) -> ExtResult<()> {
        unsupported("start-server")
    }
    async fn stop_server(&self, _: &str) -> ExtResult<()> {
        unsupported("stop-server")
    }
    async fn reboot_server(&self, _: &str) -> ExtResult<()> {
        unsupported("reboot-server")
    }
    async fn update_server(&self, _: &str, _: &ServerUpdate) -> ExtResult<ServerInfo> {
        unsupported("update-server")
    }
    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        unsupported("get-pricing")
    }
    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        unsupported("get-plans")
    }
    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        unsupported("get-zones")
    }
    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        match self.transport(id).await? {
            TransportSpec::Ssh { access, .. } => Ok(access),
            _ => unsupported("get-ssh-access"),
        }
    }
    async fn transport(&self, id: &str) -> ExtResult<TransportSpec> {
        self.spec.lock().unwrap().clone().ok_or_else(|| {
            ExtError::new(
                "box",
                "transport",
                Some(id),
                ErrorKind::NotFound,
                "server is gone",
            )
        })
    }
    async fn configure_firewall(&self, _: &str, _: &[FirewallRule]) -> ExtResult<()> {
        unsupported("configure-firewall")
    }
}

/// A request for taskserv `name` on box-1 (address 127.0.0.1).
pub fn request(
    provider: &Arc<BoxProvider>,
    name: &str,
    version: Option<&str>,
    settings: Value,
) -> TaskservRequest {
    TaskservRequest {
        address: format!("taskserv.box-1.{name}"),
        name: name.into(),
        version: version.map(str::to_string),
        settings,
        server: ServerTarget {
            address: "server.box-1".into(),
            provider_id: "box-1".into(),
            hostname: "box-1".into(),
            facts: json!({"private_ip": "127.0.0.1", "zone": "here"}),
            provider: provider.clone(),
        },
        health_check: None,
        output: None,
    }
}

/// An output sink collecting lines.
pub fn collector() -> (OutputFn, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    (
        Arc::new(move |s: &str| l2.lock().unwrap().push(s.to_string())),
        lines,
    )
}

pub fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A real OpenSSH server on 127.0.0.1 for the current user, with a generated host key and an
/// authorized client key. Stopped on drop.
pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    pub user: String,
    pub key: PathBuf,
    child: Child,
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn require_root_net() -> bool {
    std::env::var("PROV_REQUIRE_ROOT_NET").as_deref() == Ok("1")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts sshd, or returns None after printing "SKIPPED: ..." when sshd/ssh are not installed
/// (a failure instead when PROV_REQUIRE_ROOT_NET=1).
pub fn sshd(test: &str) -> Option<Sshd> {
    let have = Path::new("/usr/sbin/sshd").is_file()
        && Command::new("ssh")
            .arg("-V")
            .stderr(Stdio::null())
            .status()
            .is_ok()
        && Command::new("ssh-keygen")
            .arg("-?")
            .stderr(Stdio::null())
            .status()
            .is_ok();
    if !have {
        assert!(
            !require_root_net(),
            "{test}: PROV_REQUIRE_ROOT_NET=1 but /usr/sbin/sshd, ssh or ssh-keygen is missing"
        );
        println!("SKIPPED: {test}: OpenSSH (sshd, ssh, ssh-keygen) is not installed");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (f, t) in [("host_key", "ed25519"), ("client_key", "ed25519")] {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", t, "-N", "", "-f"])
            .arg(d.join(f))
            .status()
            .unwrap();
        assert!(st.success());
    }
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_string();
    let port = free_port();
    let config = format!(
        "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\nAllowUsers {user}\nLogLevel ERROR\nMaxSessions 50\nMaxStartups 50\n",
        hk = d.join("host_key").display(),
        ak = d.join("authorized_keys").display(),
        pid = d.join("sshd.pid").display(),
    );
    std::fs::write(d.join("sshd_config"), config).unwrap();
    // sshd wants its privilege-separation directory.
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(d.join("sshd_config"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{test}: sshd did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let key = d.join("client_key");
    Some(Sshd {
        dir,
        port,
        user,
        key,
        child,
    })
}

impl Sshd {
    pub fn access(&self) -> SshAccess {
        SshAccess {
            host: "127.0.0.1".into(),
            port: self.port,
            user: self.user.clone(),
            key_path: Some(self.key.display().to_string()),
        }
    }
}
