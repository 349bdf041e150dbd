//! The `upcloud` provider: UpCloud's public REST API 1.3 (servers, plans, zones, prices,
//! firewall rules). Settings in [`settings`], HTTP and error mapping in [`api`], JSON shapes in
//! [`convert`]. Servers carry prov's ownership tags as `prov_workspace`/`prov_address` labels.

pub mod api;
pub mod convert;
pub mod settings;

use api::{Api, Method};
use async_trait::async_trait;
use prov_engine::registry::{ExtContext, ProviderFactory};
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerUpdate, SshAccess, Validation, Zone,
};
use serde_json::{json, Value};
use settings::{UpcloudEnv, UpcloudOptions};
use std::sync::Arc;
use std::time::Instant;

/// Attributes UpCloud cannot change on an existing server.
const REPLACE_ON_CHANGE: &[&str] = &["zone", "os", "storage", "hostname", "network"];

/// Servers one batched read asks about: one listing answers a whole workspace.
const READ_BATCH: usize = 10_000;
/// Servers a batched read reads on their own at once (see `get_servers_info`).
const ALONE_AT_ONCE: usize = 16;

type Read<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = ExtResult<Option<ServerInfo>>> + Send + 'a>>;

/// Runs `reads` at most `limit` at a time on this task; the answers in order.
async fn all_bounded(mut reads: Vec<Read<'_>>, limit: usize) -> Vec<ExtResult<Option<ServerInfo>>> {
    use std::task::Poll;
    let n = reads.len();
    let limit = limit.max(1);
    let mut done: Vec<Option<ExtResult<Option<ServerInfo>>>> = (0..n).map(|_| None).collect();
    let mut next = 0;
    let mut running: Vec<usize> = Vec::new();
    std::future::poll_fn(|cx| loop {
        while running.len() < limit && next < n {
            running.push(next);
            next += 1;
        }
        let before = running.len();
        running.retain(|&i| match reads[i].as_mut().poll(cx) {
            Poll::Ready(r) => {
                done[i] = Some(r);
                false
            }
            Poll::Pending => true,
        });
        if running.is_empty() && next >= n {
            return Poll::Ready(());
        }
        // Nothing finished, or nothing left to start: wait for a wake-up.
        if running.len() == before || next >= n {
            return Poll::Pending;
        }
    })
    .await;
    done.into_iter()
        .map(|r| r.expect("every read finished"))
        .collect()
}

/// UpCloud's public zones at the time of writing (`get-zones` asks the API).
const ZONES: &[&str] = &[
    "au-syd1", "de-fra1", "dk-cph1", "es-mad1", "fi-hel1", "fi-hel2", "nl-ams1", "pl-waw1",
    "se-sto1", "sg-sin1", "uk-lon1", "us-chi1", "us-nyc1", "us-sjo1",
];

pub struct UpcloudProvider {
    name: String,
    opts: UpcloudOptions,
    api: Api,
}

/// The factory registered under `upcloud`.
pub fn factory() -> ProviderFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(UpcloudProvider::new(ctx)?) as Arc<dyn Provider>))
}

impl UpcloudProvider {
    /// Builds the provider from `ctx.settings` and `UPCLOUD_USERNAME`/`UPCLOUD_PASSWORD`; bad
    /// settings are an error before any call.
    pub fn new(ctx: &ExtContext) -> ExtResult<UpcloudProvider> {
        let opts = settings::parse(&ctx.settings, &UpcloudEnv::from_process()).map_err(|e| {
            ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, e.join("; "))
        })?;
        Ok(UpcloudProvider {
            name: ctx.name.clone(),
            api: Api::new(&ctx.name, &opts),
            opts,
        })
    }

    fn err(&self, op: &str, target: Option<&str>, kind: ErrorKind, msg: String) -> ExtError {
        ExtError::new(&self.name, op, target, kind, msg)
    }

    /// `GET /server/{id}`: the server object, `None` on 404.
    async fn server(&self, op: &str, id: &str) -> ExtResult<Option<Value>> {
        match self
            .api
            .call(op, Some(id), Method::Get, &format!("/server/{id}"), None)
            .await
        {
            Ok(a) => Ok(a.body.get("server").cloned()),
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn existing(&self, op: &str, id: &str) -> ExtResult<Value> {
        self.server(op, id).await?.ok_or_else(|| {
            self.err(
                op,
                Some(id),
                ErrorKind::NotFound,
                format!("server {id} does not exist"),
            )
        })
    }

    async fn rules(&self, op: &str, id: &str) -> ExtResult<Vec<Value>> {
        let a = self
            .api
            .call(
                op,
                Some(id),
                Method::Get,
                &format!("/server/{id}/firewall_rule"),
                None,
            )
            .await?;
        Ok(convert::list(&a.body, "firewall_rules", "firewall_rule").to_vec())
    }

    async fn info_of(&self, op: &str, server: &Value) -> ExtResult<ServerInfo> {
        let id = server
            .get("uuid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rules = if server.get("firewall").and_then(Value::as_str) == Some("on") {
            self.rules(op, id)
                .await?
                .iter()
                .map(convert::rule_from_api)
                .collect()
        } else {
            vec![]
        };
        Ok(convert::server_info(server, rules))
    }

    /// Polls until the server reaches `want` (`started`/`stopped`), at `poll_interval_ms`, for
    /// at most `wait_timeout_secs`.
    async fn wait_state(&self, op: &str, id: &str, want: &str) -> ExtResult<Value> {
        let start = Instant::now();
        loop {
            let s = self.existing(op, id).await?;
            let state = s.get("state").and_then(Value::as_str).unwrap_or("");
            if state == want {
                return Ok(s);
            }
            if start.elapsed() >= self.opts.wait_timeout {
                return Err(self.err(
                    op,
                    Some(id),
                    ErrorKind::Timeout,
                    format!(
                        "server {id} did not reach state {want:?} within {:?} (wait_timeout_secs); last state {state:?}",
                        self.opts.wait_timeout
                    ),
                ));
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    /// Waits out `maintenance` (a transition in progress) and returns the settled state.
    async fn settled(&self, op: &str, id: &str) -> ExtResult<(Value, String)> {
        let start = Instant::now();
        loop {
            let s = self.existing(op, id).await?;
            let state = s
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if state != "maintenance" || start.elapsed() >= self.opts.wait_timeout {
                return Ok((s, state));
            }
            tokio::time::sleep(self.opts.poll_interval).await;
        }
    }

    async fn stop(&self, op: &str, id: &str, stop_type: &str) -> ExtResult<()> {
        let (_, state) = self.settled(op, id).await?;
        if state == "stopped" {
            return Ok(());
        }
        let body = json!({"stop_server": {
            "stop_type": stop_type,
            "timeout": self.opts.stop_timeout_secs.to_string(),
        }});
        self.api
            .call(
                op,
                Some(id),
                Method::Post,
                &format!("/server/{id}/stop"),
                Some(body),
            )
            .await?;
        self.wait_state(op, id, "stopped").await.map(|_| ())
    }

    async fn start(&self, op: &str, id: &str) -> ExtResult<()> {
        let (_, state) = self.settled(op, id).await?;
        if state == "started" {
            return Ok(());
        }
        self.api
            .call(
                op,
                Some(id),
                Method::Post,
                &format!("/server/{id}/start"),
                None,
            )
            .await?;
        self.wait_state(op, id, "started").await.map(|_| ())
    }

    /// Converts rules client-side, so a bad rule is refused before anything changes.
    fn api_rules(&self, op: &str, target: &str, rules: &[FirewallRule]) -> ExtResult<Vec<Value>> {
        rules
            .iter()
            .enumerate()
            .map(|(i, r)| {
                convert::rule_to_api(r, i + 1).map_err(|m| {
                    self.err(
                        op,
                        Some(target),
                        ErrorKind::Invalid,
                        format!("firewall rule {i}: invalid {m}"),
                    )
                })
            })
            .collect()
    }

    fn check_tags(&self, op: &str, target: &str, spec: &ServerSpec) -> ExtResult<()> {
        for (k, v) in &spec.tags {
            convert::check_tag(k, v)
                .map_err(|m| self.err(op, Some(target), ErrorKind::Invalid, m))?;
        }
        Ok(())
    }

    /// Replaces a server's rules: deletes the current ones (from the last position, so positions
    /// stay valid), then adds the new ones in order, and turns the firewall on or off.
    async fn replace_rules(&self, op: &str, id: &str, rules: &[Value]) -> ExtResult<()> {
        let current = self.rules(op, id).await?;
        for pos in (1..=current.len()).rev() {
            self.api
                .call(
                    op,
                    Some(id),
                    Method::Delete,
                    &format!("/server/{id}/firewall_rule/{pos}"),
                    None,
                )
                .await?;
        }
        for r in rules {
            self.api
                .call(
                    op,
                    Some(id),
                    Method::Post,
                    &format!("/server/{id}/firewall_rule"),
                    Some(json!({ "firewall_rule": r })),
                )
                .await?;
        }
        let firewall = if rules.is_empty() { "off" } else { "on" };
        self.api
            .call(
                op,
                Some(id),
                Method::Put,
                &format!("/server/{id}"),
                Some(json!({"server": {"firewall": firewall}})),
            )
            .await
            .map(|_| ())
    }
}

#[async_trait]
impl Provider for UpcloudProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn replace_on_change(&self) -> &[&str] {
        REPLACE_ON_CHANGE
    }
    fn parallelism(&self) -> Option<usize> {
        Some(self.opts.parallelism)
    }

    async fn info(&self) -> ExtResult<ProviderInfo> {
        Ok(ProviderInfo {
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            interface: "prov-provider/1".to_string(),
            supported_operations: prov_engine::traits::PROVIDER_OPERATIONS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            required_auth: vec!["username".into(), "password".into()],
            supported_os: self.opts.templates.keys().cloned().collect(),
            regions: ZONES.iter().map(|z| z.to_string()).collect(),
        })
    }

    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation> {
        let env = UpcloudEnv::from_process();
        let mut v = Validation::default();
        match settings::parse(settings, &env) {
            Err(errors) => v.errors = errors,
            Ok(o) if o.credentials.is_none() => v.warnings.push(
                "no credentials: set UPCLOUD_USERNAME and UPCLOUD_PASSWORD, or auth = { method = 'basic, username, password }".into(),
            ),
            Ok(_) => {}
        }
        Ok(v)
    }

    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        match self
            .api
            .call("test-connection", None, Method::Get, "/account", None)
            .await
        {
            Ok(a) => Ok(ConnectionTest {
                success: true,
                message: format!(
                    "authenticated as {} at {}",
                    a.body
                        .pointer("/account/username")
                        .and_then(Value::as_str)
                        .unwrap_or("?"),
                    self.api.base_url()
                ),
            }),
            Err(e) => Ok(ConnectionTest {
                success: false,
                message: e.to_string(),
            }),
        }
    }

    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        const OP: &str = "create-server";
        let host = spec.hostname.as_str();
        self.check_tags(OP, host, spec)?;
        let rules = self.api_rules(OP, host, &spec.firewall_rules)?;
        let template = self
            .opts
            .templates
            .get(&spec.os)
            .cloned()
            .unwrap_or_else(|| spec.os.clone());
        let body = convert::create_body(&convert::CreateInput {
            spec,
            owner,
            template: &template,
            size_gb: self.opts.storage_size_gb,
            login_user: &self.opts.login_user,
            rules: &rules,
        });
        let a = self
            .api
            .call(OP, Some(host), Method::Post, "/server", Some(body))
            .await?;
        let id = a
            .body
            .pointer("/server/uuid")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                self.err(
                    OP,
                    Some(host),
                    ErrorKind::Failed,
                    format!("HTTP {} without server.uuid in the answer", a.status),
                )
            })?
            .to_string();
        // From here on the server exists: errors name its id as well (refresh adopts it by
        // its ownership labels if this apply does not finish).
        let target = format!("{host} ({id})");
        let server = self
            .wait_state(OP, &id, "started")
            .await
            .map_err(|e| ExtError {
                target: Some(target.clone()),
                ..e
            })?;
        for r in &rules {
            self.api
                .call(
                    OP,
                    Some(&target),
                    Method::Post,
                    &format!("/server/{id}/firewall_rule"),
                    Some(json!({ "firewall_rule": r })),
                )
                .await?;
        }
        self.info_of(OP, &server).await
    }

    /// Stops the server (hard: it is going away), then deletes it with its storages.
    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "delete-server";
        self.stop(OP, id, "hard").await?;
        self.api
            .call(
                OP,
                Some(id),
                Method::Delete,
                &format!("/server/{id}?storages=1"),
                None,
            )
            .await
            .map(|_| ())
    }

    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        let a = self
            .api
            .call("list-servers", None, Method::Get, "/server", None)
            .await?;
        Ok(convert::list(&a.body, "servers", "server")
            .iter()
            .map(|s| convert::server_info(s, vec![]))
            .collect())
    }

    /// A refresh asks about all of a workspace's servers in one call (see `get_servers_info`).
    fn read_batch(&self) -> usize {
        READ_BATCH
    }

    /// The server list and the account's IP addresses (two calls, at once) answer every server
    /// whose listing says its firewall is off; a server whose firewall is on, or whose listing
    /// does not say, is read on its own as before (its firewall rules are per server), up to
    /// `ALONE_AT_ONCE` at a time.
    async fn get_servers_info(&self, ids: &[String]) -> Vec<ExtResult<Option<ServerInfo>>> {
        const OP: &str = "get-server-info";
        let (servers, addresses) = tokio::join!(
            self.api.call(OP, None, Method::Get, "/server", None),
            self.api.call(OP, None, Method::Get, "/ip_address", None),
        );
        let (servers, addresses) = match (servers, addresses) {
            (Ok(s), Ok(a)) => (s.body, a.body),
            (Err(e), _) | (_, Err(e)) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let listed: std::collections::HashMap<&str, &Value> =
            convert::list(&servers, "servers", "server")
                .iter()
                .filter_map(|s| Some((s.get("uuid")?.as_str()?, s)))
                .collect();
        let mut ips: std::collections::HashMap<&str, Vec<Value>> = Default::default();
        for a in convert::list(&addresses, "ip_addresses", "ip_address") {
            if let Some(server) = a.get("server").and_then(Value::as_str) {
                ips.entry(server).or_default().push(a.clone());
            }
        }
        let mut out: Vec<Option<ExtResult<Option<ServerInfo>>>> = Vec::with_capacity(ids.len());
        let mut alone = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match listed.get(id.as_str()) {
                None => out.push(Some(Ok(None))),
                Some(summary) if summary.get("firewall").and_then(Value::as_str) == Some("off") => {
                    let mut s = (*summary).clone();
                    s["ip_addresses"] =
                        json!({ "ip_address": ips.remove(id.as_str()).unwrap_or_default() });
                    out.push(Some(Ok(Some(convert::server_info(&s, vec![])))));
                }
                Some(_) => {
                    out.push(None);
                    alone.push(i);
                }
            }
        }
        // Those read alone go concurrently, as refresh would ask them without batches.
        let reads = alone
            .iter()
            .map(|&i| Box::pin(self.get_server_info(&ids[i])) as Read<'_>)
            .collect();
        for (i, r) in alone
            .into_iter()
            .zip(all_bounded(reads, ALONE_AT_ONCE).await)
        {
            out[i] = Some(r);
        }
        out.into_iter()
            .map(|r| r.expect("every id answered"))
            .collect()
    }

    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        const OP: &str = "get-server-info";
        match self.server(OP, id).await? {
            None => Ok(None),
            Some(s) => self.info_of(OP, &s).await.map(Some),
        }
    }

    async fn start_server(&self, id: &str) -> ExtResult<()> {
        self.start("start-server", id).await
    }

    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        self.stop("stop-server", id, "soft").await
    }

    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "reboot-server";
        let (_, state) = self.settled(OP, id).await?;
        if state != "started" {
            return self.start(OP, id).await;
        }
        let body = json!({"restart_server": {
            "stop_type": "soft",
            "timeout": self.opts.stop_timeout_secs.to_string(),
            "timeout_action": "destroy",
        }});
        self.api
            .call(
                OP,
                Some(id),
                Method::Post,
                &format!("/server/{id}/restart"),
                Some(body),
            )
            .await?;
        self.wait_state(OP, id, "started").await.map(|_| ())
    }

    /// Tags (labels) change in place; a plan change stops the server, resizes it and starts it
    /// again if it was running; firewall rules are replaced.
    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        const OP: &str = "update-server";
        let (b, a) = (&update.before, &update.after);
        let fixed = [
            ("zone", b.zone != a.zone),
            ("os", b.os != a.os),
            ("hostname", b.hostname != a.hostname),
            ("storage", b.storage != a.storage),
            ("network", b.network != a.network),
        ];
        if let Some((attr, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Err(self.err(
                OP,
                Some(id),
                ErrorKind::Invalid,
                format!("{attr} cannot change in place on UpCloud; it forces a replacement"),
            ));
        }
        self.check_tags(OP, id, a)?;
        let rules = self.api_rules(OP, id, &a.firewall_rules)?;
        let current = self.existing(OP, id).await?;
        if a.tags != b.tags {
            // Keep the prov_* labels the server carries; replace the user's.
            let kept: std::collections::BTreeMap<String, String> =
                convert::server_info(&current, vec![])
                    .tags
                    .into_iter()
                    .filter(|(k, _)| k.starts_with("prov:"))
                    .collect();
            let body = json!({"server": {"labels": convert::labels(&a.tags, &kept)}});
            self.api
                .call(
                    OP,
                    Some(id),
                    Method::Put,
                    &format!("/server/{id}"),
                    Some(body),
                )
                .await?;
        }
        if a.plan != b.plan {
            let (_, state) = self.settled(OP, id).await?;
            let was_running = state == "started";
            self.stop(OP, id, "soft").await?;
            self.api
                .call(
                    OP,
                    Some(id),
                    Method::Put,
                    &format!("/server/{id}"),
                    Some(json!({"server": {"plan": a.plan}})),
                )
                .await?;
            if was_running {
                self.start(OP, id).await?;
            }
        }
        if a.firewall_rules != b.firewall_rules {
            self.replace_rules(OP, id, &rules).await?;
        }
        let s = self.existing(OP, id).await?;
        self.info_of(OP, &s).await
    }

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        let a = self
            .api
            .call("get-pricing", None, Method::Get, "/price", None)
            .await?;
        Ok(convert::prices(&a.body))
    }

    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        let a = self
            .api
            .call("get-plans", None, Method::Get, "/plan", None)
            .await?;
        Ok(convert::plans(&a.body))
    }

    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        let a = self
            .api
            .call("get-zones", None, Method::Get, "/zone", None)
            .await?;
        Ok(convert::zones(&a.body))
    }

    /// The public IPv4 address, port 22, `login_user` (default root), `ssh_key_path`.
    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        const OP: &str = "get-ssh-access";
        let s = self.existing(OP, id).await?;
        let info = convert::server_info(&s, vec![]);
        let host = info.public_ip.ok_or_else(|| {
            self.err(
                OP,
                Some(id),
                ErrorKind::Failed,
                format!("server {id} has no public IPv4 address"),
            )
        })?;
        Ok(SshAccess {
            host,
            port: 22,
            user: self.opts.login_user.clone(),
            key_path: self.opts.ssh_key_path.clone(),
        })
    }

    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        const OP: &str = "configure-firewall";
        let rules = self.api_rules(OP, id, rules)?;
        self.existing(OP, id).await?;
        self.replace_rules(OP, id, &rules).await
    }
}
