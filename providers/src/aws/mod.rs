//! The `aws` provider: EC2 instances through the AWS SDK (works against AWS or moto via
//! `endpoint_url`). One security group and, with `ssh_keys`, one imported key pair per server,
//! both tagged with the ownership tags and removed with the server.
//!
//! Settings are in [`settings`]; OS → AMI patterns, firewall mapping and the price table in
//! [`mapping`]. User docs: docs/providers/aws.md.

pub mod mapping;
pub mod settings;

pub use settings::AwsSettings;

use async_trait::async_trait;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{
    AttributeValue, Filter, Instance, InstanceStateName, InstanceType, IpPermission, Placement,
    ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client;
use prov_engine::registry::{ExtContext, ProviderFactory};
use prov_engine::traits::{
    ConnectionTest, ErrorKind, ExtError, ExtResult, FirewallRule, Ownership, PlanInfo, Pricing,
    Provider, ProviderInfo, ServerInfo, ServerSpec, ServerUpdate, SshAccess, Validation, Zone,
};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

const NAME_TAG: &str = "Name";
const HOSTNAME_TAG: &str = "prov:hostname";
const OS_TAG: &str = "prov:os";

/// Attributes that need a new instance: the AZ and image are fixed at launch, the key pair and
/// the name of the security group follow the hostname and keys.
const REPLACE_ON_CHANGE: &[&str] = &["zone", "os", "hostname", "ssh_keys", "storage", "network"];

/// Instance states that still count as a server (terminated ones linger in DescribeInstances).
const LIVE_STATES: &[&str] = &["pending", "running", "stopping", "stopped", "shutting-down"];

/// Servers one refresh call asks about: all of a workspace's, as one tag-filtered listing
/// answers them all (its pages hold up to 1,000 instances each).
const READ_BATCH: usize = 100_000;

pub struct AwsProvider {
    name: String,
    workspace: String,
    settings: AwsSettings,
    client: OnceCell<Client>,
}

/// The factory registered under `aws`: settings are checked here, before any call.
pub fn factory() -> ProviderFactory {
    Arc::new(|ctx: &ExtContext| Ok(Arc::new(AwsProvider::new(ctx)?) as Arc<dyn Provider>))
}

impl AwsProvider {
    pub fn new(ctx: &ExtContext) -> ExtResult<AwsProvider> {
        let settings = settings::parse(&ctx.settings).map_err(|errs| {
            ExtError::new(&ctx.name, "load", None, ErrorKind::Invalid, errs.join("; "))
        })?;
        Ok(AwsProvider {
            name: ctx.name.clone(),
            workspace: ctx.workspace_name.clone(),
            settings,
            client: OnceCell::new(),
        })
    }

    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    /// The EC2 client, built on first use: retries are the SDK's standard mode (exponential
    /// backoff with jitter, `api.retries` retries), every operation bounded by `api.timeout`.
    pub async fn client(&self) -> &Client {
        self.client
            .get_or_init(|| async {
                let s = &self.settings;
                let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
                    .region(aws_config::Region::new(s.region.clone()))
                    .retry_config(
                        aws_config::retry::RetryConfig::standard()
                            .with_max_attempts(s.retries + 1)
                            .with_initial_backoff(Duration::from_millis(200))
                            .with_max_backoff(Duration::from_secs(20)),
                    )
                    .timeout_config(
                        aws_config::timeout::TimeoutConfig::builder()
                            .connect_timeout(s.timeout.min(Duration::from_secs(10)))
                            .operation_attempt_timeout(s.timeout)
                            .operation_timeout(s.timeout * (s.retries + 1) + Duration::from_secs(1))
                            .build(),
                    );
                if let Some(e) = &s.endpoint_url {
                    loader = loader.endpoint_url(e);
                }
                if let Some(c) = &s.credentials {
                    loader = loader.credentials_provider(aws_sdk_ec2::config::Credentials::new(
                        c.access_key_id.clone(),
                        c.secret_access_key.clone(),
                        None,
                        None,
                        "prov-settings",
                    ));
                }
                Client::new(&loader.load().await)
            })
            .await
    }

    fn err(
        &self,
        op: &str,
        target: Option<&str>,
        kind: ErrorKind,
        msg: impl Into<String>,
    ) -> ExtError {
        ExtError::new(&self.name, op, target, kind, self.redact(msg.into()))
    }

    /// Credentials never leave the provider, not even inside an echoed error message.
    fn redact(&self, mut msg: String) -> String {
        if let Some(c) = &self.settings.credentials {
            for secret in [&c.secret_access_key, &c.access_key_id] {
                if !secret.is_empty() {
                    msg = msg.replace(secret.as_str(), "<redacted>");
                }
            }
        }
        msg
    }

    /// The endpoint in use, for messages: the settings', else the SDK's environment variables.
    fn endpoint(&self) -> String {
        self.settings
            .endpoint_url
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL_EC2").ok())
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| format!("the EC2 endpoint of {}", self.settings.region))
    }

    /// Classifies an SDK error into an `ExtError` of the right kind.
    fn sdk_err<E, R>(&self, op: &str, target: Option<&str>, e: SdkError<E, R>) -> ExtError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let s = &self.settings;
        match &e {
            SdkError::TimeoutError(_) => self.err(
                op,
                target,
                ErrorKind::Timeout,
                format!(
                    "no answer from {} within {:?} (api.timeout) after {} retries",
                    self.endpoint(),
                    s.timeout,
                    s.retries
                ),
            ),
            SdkError::DispatchFailure(d) if d.is_timeout() => self.err(
                op,
                target,
                ErrorKind::Timeout,
                format!(
                    "timed out connecting to {} (api.timeout {:?}, {} retries)",
                    self.endpoint(),
                    s.timeout,
                    s.retries
                ),
            ),
            SdkError::DispatchFailure(_) => self.err(
                op,
                target,
                ErrorKind::Failed,
                format!(
                    "cannot reach {} after {} retries: {}",
                    self.endpoint(),
                    s.retries,
                    chain(&e)
                ),
            ),
            SdkError::ServiceError(_) => {
                let code = e.code().unwrap_or("").to_string();
                let message = e.message().unwrap_or("").to_string();
                let kind = match code.as_str() {
                    "AuthFailure"
                    | "UnauthorizedOperation"
                    | "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "OptInRequired"
                    | "Blocked" => ErrorKind::Auth,
                    "RequestLimitExceeded" | "Throttling" | "ThrottlingException" => {
                        ErrorKind::Throttled
                    }
                    c if c.ends_with(".NotFound")
                        || c.ends_with(".Malformed") && c.contains("ID") =>
                    {
                        ErrorKind::NotFound
                    }
                    c if c.starts_with("Invalid")
                        || c == "MissingParameter"
                        || c == "Unsupported" =>
                    {
                        ErrorKind::Invalid
                    }
                    _ => ErrorKind::Failed,
                };
                let extra = match kind {
                    ErrorKind::Auth => " (check providers.aws.auth or the AWS credential chain)",
                    ErrorKind::Throttled => " (still throttled after api.retries retries)",
                    _ => "",
                };
                self.err(op, target, kind, format!("{code}: {message}{extra}"))
            }
            _ => self.err(op, target, ErrorKind::Failed, chain(&e)),
        }
    }

    fn not_found(&self, op: &str, id: &str) -> ExtError {
        self.err(
            op,
            Some(id),
            ErrorKind::NotFound,
            format!("no instance {id:?} in {}", self.settings.region),
        )
    }

    /// The instance with this id, unless it does not exist or is terminated.
    async fn instance(&self, op: &str, id: &str) -> ExtResult<Option<Instance>> {
        let out = self
            .client()
            .await
            .describe_instances()
            .instance_ids(id)
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let e = self.sdk_err(op, Some(id), e);
                return if e.kind == ErrorKind::NotFound {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        Ok(out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .find(|i| {
                i.instance_id() == Some(id)
                    && !matches!(
                        i.state().and_then(|s| s.name()),
                        Some(InstanceStateName::Terminated)
                    )
            })
            .cloned())
    }

    async fn require_instance(&self, op: &str, id: &str) -> ExtResult<Instance> {
        self.instance(op, id)
            .await?
            .ok_or_else(|| self.not_found(op, id))
    }

    /// Rules of the instance's security groups (the one prov made, and any others).
    async fn firewall_of(&self, op: &str, inst: &Instance) -> ExtResult<Vec<FirewallRule>> {
        let ids: Vec<String> = inst
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .client()
            .await
            .describe_security_groups()
            .set_group_ids(Some(ids))
            .send()
            .await
            .map_err(|e| self.sdk_err(op, inst.instance_id(), e))?;
        let mut rules = Vec::new();
        for g in out.security_groups() {
            rules.extend(mapping::rules_from(
                g.ip_permissions(),
                g.ip_permissions_egress(),
            ));
        }
        Ok(rules)
    }

    /// The live instances prov created (any workspace's: the tag's value is the state's
    /// identity, which providers do not know), by id: DescribeInstances filtered by the
    /// ownership tag, in pages of up to 1,000.
    async fn owned_instances(&self, op: &str) -> ExtResult<BTreeMap<String, Instance>> {
        let c = self.client().await;
        let mut out = BTreeMap::new();
        let mut token: Option<String> = None;
        // A page limit guards against a token that never ends (moto ignores MaxResults).
        for _ in 0..10_000 {
            let page = c
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name("tag-key")
                        .values(prov_engine::traits::Ownership::TAG_WORKSPACE)
                        .build(),
                )
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                        .build(),
                )
                .max_results(1000)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err(op, None, e))?;
            for inst in page.reservations().iter().flat_map(|r| r.instances()) {
                if let Some(id) = inst.instance_id() {
                    out.insert(id.to_string(), inst.clone());
                }
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        Ok(out)
    }

    /// The firewall rules of each of these security groups, in one call.
    async fn rules_of_groups(
        &self,
        op: &str,
        groups: Vec<String>,
    ) -> ExtResult<BTreeMap<String, Vec<FirewallRule>>> {
        let mut out = BTreeMap::new();
        if groups.is_empty() {
            return Ok(out);
        }
        let found = self
            .client()
            .await
            .describe_security_groups()
            .set_group_ids(Some(groups))
            .send()
            .await
            .map_err(|e| self.sdk_err(op, None, e))?;
        for g in found.security_groups() {
            if let Some(id) = g.group_id() {
                out.insert(
                    id.to_string(),
                    mapping::rules_from(g.ip_permissions(), g.ip_permissions_egress()),
                );
            }
        }
        Ok(out)
    }

    fn to_info(&self, inst: &Instance, firewall_rules: Vec<FirewallRule>) -> ServerInfo {
        let tags: BTreeMap<String, String> = inst
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or("").to_string())))
            .collect();
        let hostname = tags
            .get(HOSTNAME_TAG)
            .or_else(|| tags.get(NAME_TAG))
            .cloned()
            .unwrap_or_else(|| inst.instance_id().unwrap_or("").to_string());
        let os = tags
            .get(OS_TAG)
            .cloned()
            .unwrap_or_else(|| inst.image_id().unwrap_or("").to_string());
        // The Name tag prov sets from the hostname is not a user tag.
        let user_tags: BTreeMap<String, String> = tags
            .iter()
            .filter(|(k, v)| !(k.as_str() == NAME_TAG && **v == hostname))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        ServerInfo {
            id: inst.instance_id().unwrap_or("").to_string(),
            hostname,
            status: mapping::status(inst.state().and_then(|s| s.name())),
            plan: inst
                .instance_type()
                .map(|t| t.as_str().to_string())
                .unwrap_or_default(),
            zone: inst
                .placement()
                .and_then(|p| p.availability_zone())
                .unwrap_or("")
                .to_string(),
            os,
            public_ip: inst.public_ip_address().map(str::to_string),
            private_ip: inst.private_ip_address().map(str::to_string),
            tags: user_tags,
            firewall_rules,
            extra: json!({
                "region": self.settings.region,
                "image_id": inst.image_id(),
                "state": inst.state().and_then(|s| s.name()).map(|n| n.as_str().to_string()),
                "key_name": inst.key_name(),
                "security_group_ids": inst.security_groups().iter().filter_map(|g| g.group_id()).collect::<Vec<_>>(),
            }),
        }
    }

    async fn info_of(&self, op: &str, id: &str) -> ExtResult<ServerInfo> {
        let inst = self.require_instance(op, id).await?;
        let rules = self.firewall_of(op, &inst).await?;
        Ok(self.to_info(&inst, rules))
    }

    /// The newest image for an OS name, or the literal AMI id checked to exist.
    async fn find_image(&self, op: &str, target: &str, os: &str) -> ExtResult<String> {
        let c = self.client().await;
        let req = if os.starts_with("ami-") {
            c.describe_images().image_ids(os)
        } else {
            let img = mapping::os_image(os).ok_or_else(|| {
                self.err(
                    op,
                    Some(target),
                    ErrorKind::Invalid,
                    mapping::check_os(os).unwrap_err(),
                )
            })?;
            c.describe_images()
                .owners(img.owner)
                .filters(
                    Filter::builder()
                        .name("name")
                        .values(img.name_pattern)
                        .build(),
                )
                .filters(Filter::builder().name("state").values("available").build())
        };
        let out = req
            .send()
            .await
            .map_err(|e| self.sdk_err(op, Some(target), e))?;
        let mut images: Vec<_> = out.images().iter().collect();
        // ISO 8601 dates sort as strings.
        images.sort_by(|a, b| b.creation_date().cmp(&a.creation_date()));
        images
            .first()
            .and_then(|i| i.image_id())
            .map(str::to_string)
            .ok_or_else(|| {
                let how = mapping::os_image(os)
                    .map(|i| format!("owner {} name {:?}", i.owner, i.name_pattern))
                    .unwrap_or_else(|| "that id".to_string());
                self.err(
                    op,
                    Some(target),
                    ErrorKind::Invalid,
                    format!("no image for os {os:?} in {} ({how})", self.settings.region),
                )
            })
    }

    fn resource_name(&self, hostname: &str) -> String {
        format!("prov-{}-{}", self.workspace, hostname)
    }

    fn ownership_tags(&self, owner: &Ownership, hostname: &str) -> Vec<Tag> {
        vec![
            tag(
                prov_engine::traits::Ownership::TAG_WORKSPACE,
                &owner.workspace,
            ),
            tag(prov_engine::traits::Ownership::TAG_ADDRESS, &owner.address),
            tag(HOSTNAME_TAG, hostname),
        ]
    }

    /// Replaces every permission of a security group with `rules`.
    async fn set_rules(
        &self,
        op: &str,
        target: &str,
        group_id: &str,
        rules: &[FirewallRule],
    ) -> ExtResult<()> {
        let c = self.client().await;
        let out = c
            .describe_security_groups()
            .group_ids(group_id)
            .send()
            .await
            .map_err(|e| self.sdk_err(op, Some(target), e))?;
        let g = out.security_groups().first().ok_or_else(|| {
            self.err(
                op,
                Some(target),
                ErrorKind::NotFound,
                format!("security group {group_id} is gone"),
            )
        })?;
        let (want_in, want_out) = mapping::permissions(rules);
        let old_in: Vec<IpPermission> = g.ip_permissions().to_vec();
        let old_out: Vec<IpPermission> = g.ip_permissions_egress().to_vec();
        if !old_in.is_empty() {
            c.revoke_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(old_in))
                .send()
                .await
                .map_err(|e| self.sdk_err(op, Some(target), e))?;
        }
        if !old_out.is_empty() {
            c.revoke_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(old_out))
                .send()
                .await
                .map_err(|e| self.sdk_err(op, Some(target), e))?;
        }
        if !want_in.is_empty() {
            c.authorize_security_group_ingress()
                .group_id(group_id)
                .set_ip_permissions(Some(want_in))
                .send()
                .await
                .map_err(|e| self.sdk_err(op, Some(target), e))?;
        }
        if !want_out.is_empty() {
            c.authorize_security_group_egress()
                .group_id(group_id)
                .set_ip_permissions(Some(want_out))
                .send()
                .await
                .map_err(|e| self.sdk_err(op, Some(target), e))?;
        }
        Ok(())
    }

    /// The security group prov made for this instance (tagged `prov:hostname`).
    async fn own_group(&self, op: &str, inst: &Instance) -> ExtResult<Option<String>> {
        let ids: Vec<String> = inst
            .security_groups()
            .iter()
            .filter_map(|g| g.group_id().map(str::to_string))
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        let out = self
            .client()
            .await
            .describe_security_groups()
            .set_group_ids(Some(ids))
            .send()
            .await
            .map_err(|e| self.sdk_err(op, inst.instance_id(), e))?;
        Ok(out
            .security_groups()
            .iter()
            .find(|g| g.tags().iter().any(|t| t.key() == Some(HOSTNAME_TAG)))
            .and_then(|g| g.group_id())
            .map(str::to_string))
    }

    /// Waits for a state with the SDK's waiter, bounded by `wait_timeout`.
    async fn wait_for(&self, op: &str, id: &str, state: InstanceStateName) -> ExtResult<()> {
        let c = self.client().await;
        let max = self.settings.wait_timeout;
        // The waiter's own limit is set past ours so a timeout is always reported as ours.
        let sdk_max = max + Duration::from_secs(60);
        let waited = match state {
            InstanceStateName::Running => {
                tokio::time::timeout(max, async {
                    c.wait_until_instance_running()
                        .instance_ids(id)
                        .wait(sdk_max)
                        .await
                        .map(|_| ())
                        .map_err(|e| chain(&e))
                })
                .await
            }
            InstanceStateName::Stopped => {
                tokio::time::timeout(max, async {
                    c.wait_until_instance_stopped()
                        .instance_ids(id)
                        .wait(sdk_max)
                        .await
                        .map(|_| ())
                        .map_err(|e| chain(&e))
                })
                .await
            }
            _ => {
                tokio::time::timeout(max, async {
                    c.wait_until_instance_terminated()
                        .instance_ids(id)
                        .wait(sdk_max)
                        .await
                        .map(|_| ())
                        .map_err(|e| chain(&e))
                })
                .await
            }
        };
        match waited {
            Ok(Ok(())) => Ok(()),
            Ok(Err(m)) => Err(self.err(
                op,
                Some(id),
                ErrorKind::Failed,
                format!("waiting for state {}: {m}", state.as_str()),
            )),
            Err(_) => Err(self.err(
                op,
                Some(id),
                ErrorKind::Timeout,
                format!(
                    "not {} after {:?} (providers.aws.wait_timeout)",
                    state.as_str(),
                    max
                ),
            )),
        }
    }

    fn check_spec(&self, op: &str, spec: &ServerSpec) -> ExtResult<()> {
        let invalid = |m: String| self.err(op, Some(&spec.hostname), ErrorKind::Invalid, m);
        mapping::check_os(&spec.os).map_err(invalid)?;
        mapping::check_rules(&spec.firewall_rules).map_err(invalid)?;
        if !spec.zone.starts_with(&self.settings.region) {
            return Err(invalid(format!(
                "zone {:?} is not in region {:?} (providers.aws.region); see `prov provider zones aws`",
                spec.zone, self.settings.region
            )));
        }
        if spec.plan.trim().is_empty() {
            return Err(invalid("plan (the instance type) is empty".into()));
        }
        if spec.ssh_keys.len() > 1 {
            return Err(invalid(format!(
                "{} ssh_keys given; an EC2 instance takes one key pair",
                spec.ssh_keys.len()
            )));
        }
        for k in spec.tags.keys() {
            if k.starts_with("aws:") || k.starts_with("prov:") {
                return Err(invalid(format!(
                    "tag {k:?}: the aws: and prov: prefixes are reserved"
                )));
            }
        }
        Ok(())
    }

    /// Public key material: the key itself (`ssh-ed25519 AAAA...`) or a path to a `.pub` file.
    fn public_key(&self, op: &str, target: &str, key: &str) -> ExtResult<Vec<u8>> {
        let k = key.trim();
        if k.starts_with("ssh-") || k.starts_with("ecdsa-") {
            return Ok(k.as_bytes().to_vec());
        }
        let path = match k.strip_prefix("~/") {
            Some(rest) => std::env::var("HOME")
                .map(|h| format!("{h}/{rest}"))
                .unwrap_or_else(|_| k.to_string()),
            None => k.to_string(),
        };
        std::fs::read(&path).map_err(|e| {
            self.err(
                op,
                Some(target),
                ErrorKind::Invalid,
                format!("ssh_keys: {path:?} is neither an OpenSSH public key nor a readable .pub file: {e}"),
            )
        })
    }

    /// Best-effort removal of what a failed create left behind (the original error wins).
    async fn cleanup(&self, group_id: Option<&str>, key_name: Option<&str>) {
        let c = self.client().await;
        if let Some(g) = group_id {
            let _ = c.delete_security_group().group_id(g).send().await;
        }
        if let Some(k) = key_name {
            let _ = c.delete_key_pair().key_name(k).send().await;
        }
    }

    /// Creates the server's security group; one left by an earlier failed or interrupted create
    /// of the same server (same ownership tags) is taken over, anything else with the name is
    /// an error naming it.
    async fn create_group(
        &self,
        op: &str,
        target: &str,
        name: &str,
        owner: &Ownership,
        owned: &[Tag],
    ) -> ExtResult<String> {
        let c = self.client().await;
        let created = c
            .create_security_group()
            .group_name(name)
            .description(format!(
                "prov firewall for {} ({})",
                owner.address, owner.workspace
            ))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::SecurityGroup)
                    .set_tags(Some(owned.to_vec()))
                    .build(),
            )
            .send()
            .await;
        match created {
            Ok(sg) => Ok(sg.group_id().unwrap_or_default().to_string()),
            Err(e) if e.code() == Some("InvalidGroup.Duplicate") => {
                let out = c
                    .describe_security_groups()
                    .filters(Filter::builder().name("group-name").values(name).build())
                    .send()
                    .await
                    .map_err(|e| self.sdk_err(op, Some(target), e))?;
                let tagged = |g: &aws_sdk_ec2::types::SecurityGroup, k: &str, v: &str| {
                    g.tags()
                        .iter()
                        .any(|t| t.key() == Some(k) && t.value() == Some(v))
                };
                out.security_groups()
                    .iter()
                    .find(|g| {
                        tagged(g, prov_engine::traits::Ownership::TAG_WORKSPACE, &owner.workspace)
                            && tagged(g, prov_engine::traits::Ownership::TAG_ADDRESS, &owner.address)
                    })
                    .and_then(|g| g.group_id())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        self.err(
                            op,
                            Some(target),
                            ErrorKind::Failed,
                            format!(
                                "a security group named {name:?} exists and does not belong to {} of workspace {:?}",
                                owner.address, owner.workspace
                            ),
                        )
                    })
            }
            Err(e) => Err(self.sdk_err(op, Some(target), e)),
        }
    }

    /// Imports the server's SSH key as the key pair `name`, tagged as ours; one an earlier
    /// failed create left under that name is replaced.
    async fn import_key(
        &self,
        op: &str,
        spec: &ServerSpec,
        name: &str,
        material: Vec<u8>,
        owned: &[Tag],
    ) -> ExtResult<()> {
        let target = spec.hostname.as_str();
        let c = self.client().await;
        let r = c
            .import_key_pair()
            .key_name(name)
            .public_key_material(aws_sdk_ec2::primitives::Blob::new(material))
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::KeyPair)
                    .set_tags(Some(owned.to_vec()))
                    .build(),
            )
            .send()
            .await;
        let r = match r {
            // Ours by its name (workspace and hostname), left by an earlier failed create:
            // replace it with the key now configured.
            Err(e) if e.code() == Some("InvalidKeyPair.Duplicate") => {
                let _ = c.delete_key_pair().key_name(name).send().await;
                c.import_key_pair()
                    .key_name(name)
                    .public_key_material(aws_sdk_ec2::primitives::Blob::new(self.public_key(
                        op,
                        target,
                        &spec.ssh_keys[0],
                    )?))
                    .send()
                    .await
                    .map(|_| ())
            }
            other => other.map(|_| ()),
        };
        r.map_err(|e| self.sdk_err(op, Some(target), e))
    }

    async fn create(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        const OP: &str = "create-server";
        let target = spec.hostname.as_str();
        self.check_spec(OP, spec)?;
        let key_material = match spec.ssh_keys.first() {
            Some(k) => Some(self.public_key(OP, target, k)?),
            None => None,
        };
        let image = self.find_image(OP, target, &spec.os).await?;
        let c = self.client().await;
        let name = self.resource_name(&spec.hostname);
        let owned = self.ownership_tags(owner, &spec.hostname);

        let group_id = self.create_group(OP, target, &name, owner, &owned).await?;
        if let Err(e) = self
            .set_rules(OP, target, &group_id, &spec.firewall_rules)
            .await
        {
            self.cleanup(Some(&group_id), None).await;
            return Err(e);
        }

        let mut key_name = None;
        if let Some(material) = key_material {
            if let Err(e) = self.import_key(OP, spec, &name, material, &owned).await {
                self.cleanup(Some(&group_id), None).await;
                return Err(e);
            }
            key_name = Some(name.clone());
        }

        let mut tags = owned;
        tags.push(tag(OS_TAG, &spec.os));
        if !spec.tags.contains_key(NAME_TAG) {
            tags.push(tag(NAME_TAG, &spec.hostname));
        }
        tags.extend(spec.tags.iter().map(|(k, v)| tag(k, v)));
        let run = c
            .run_instances()
            .image_id(&image)
            .instance_type(InstanceType::from(spec.plan.as_str()))
            .min_count(1)
            .max_count(1)
            .placement(Placement::builder().availability_zone(&spec.zone).build())
            .security_group_ids(&group_id)
            .set_key_name(key_name.clone())
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            )
            .send()
            .await;
        let run = match run {
            Ok(r) => r,
            Err(e) => {
                self.cleanup(Some(&group_id), key_name.as_deref()).await;
                return Err(self.sdk_err(OP, Some(target), e));
            }
        };
        let id = run
            .instances()
            .first()
            .and_then(|i| i.instance_id())
            .ok_or_else(|| {
                self.err(
                    OP,
                    Some(target),
                    ErrorKind::Failed,
                    "RunInstances returned no instance",
                )
            })?
            .to_string();
        self.wait_for(OP, &id, InstanceStateName::Running).await?;
        self.info_of(OP, &id).await
    }
}

/// An error and its sources, Display only (the SDK's own context dump includes Debug output).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        src = s.source();
    }
    parts.join(": ")
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

#[async_trait]
impl Provider for AwsProvider {
    fn name(&self) -> &str {
        &self.name
    }
    fn replace_on_change(&self) -> &[&str] {
        REPLACE_ON_CHANGE
    }
    fn parallelism(&self) -> Option<usize> {
        self.settings.parallelism
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
            required_auth: vec!["api_key".to_string(), "api_secret".to_string()],
            supported_os: mapping::OS_IMAGES
                .iter()
                .map(|o| o.os.to_string())
                .collect(),
            regions: vec![self.settings.region.clone()],
        })
    }

    async fn validate_config(&self, settings: &Value) -> ExtResult<Validation> {
        let mut v = Validation::default();
        match settings::parse(settings) {
            Ok(s) => {
                if s.credentials.is_none() {
                    v.warnings.push(
                        "no auth block: credentials come from the AWS environment/profile chain"
                            .to_string(),
                    );
                }
            }
            Err(errs) => v.errors = errs,
        }
        Ok(v)
    }

    async fn test_connection(&self) -> ExtResult<ConnectionTest> {
        const OP: &str = "test-connection";
        let out = self
            .client()
            .await
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, None, e))?;
        Ok(ConnectionTest {
            success: true,
            message: format!(
                "{} answers for region {} ({} availability zones)",
                self.endpoint(),
                self.settings.region,
                out.availability_zones().len()
            ),
        })
    }

    async fn create_server(&self, spec: &ServerSpec, owner: &Ownership) -> ExtResult<ServerInfo> {
        self.create(spec, owner).await
    }

    async fn delete_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "delete-server";
        let inst = self.require_instance(OP, id).await?;
        let group = self.own_group(OP, &inst).await?;
        let key = inst
            .key_name()
            .filter(|k| k.starts_with(&format!("prov-{}-", self.workspace)))
            .map(str::to_string);
        let c = self.client().await;
        c.terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, Some(id), e))?;
        self.wait_for(OP, id, InstanceStateName::Terminated).await?;
        if let Some(g) = group {
            // AWS detaches a terminated instance's network interface a little after the state
            // says terminated; until then the group is "in use" (DependencyViolation).
            let deadline = tokio::time::Instant::now() + self.settings.wait_timeout;
            let mut pause = Duration::from_millis(500);
            loop {
                match c.delete_security_group().group_id(&g).send().await {
                    Ok(_) => break,
                    Err(e) if e.code() == Some("InvalidGroup.NotFound") => break,
                    Err(e)
                        if e.code() == Some("DependencyViolation")
                            && tokio::time::Instant::now() + pause < deadline =>
                    {
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(10));
                    }
                    Err(e) => return Err(self.sdk_err(OP, Some(id), e)),
                }
            }
        }
        if let Some(k) = key {
            c.delete_key_pair()
                .key_name(&k)
                .send()
                .await
                .map_err(|e| self.sdk_err(OP, Some(id), e))?;
        }
        Ok(())
    }

    async fn list_servers(&self) -> ExtResult<Vec<ServerInfo>> {
        const OP: &str = "list-servers";
        let c = self.client().await;
        let mut instances = Vec::new();
        let mut token: Option<String> = None;
        // moto ignores MaxResults; a page limit guards against a token that never ends.
        for _ in 0..100 {
            let out = c
                .describe_instances()
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .set_values(Some(LIVE_STATES.iter().map(|s| s.to_string()).collect()))
                        .build(),
                )
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err(OP, None, e))?;
            instances.extend(
                out.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .cloned(),
            );
            token = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        let mut out = Vec::new();
        for inst in &instances {
            let rules = self.firewall_of(OP, inst).await?;
            out.push(self.to_info(inst, rules));
        }
        out.sort_by(|a, b| a.hostname.cmp(&b.hostname).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// A refresh asks about all of a workspace's servers in one call: one listing of the
    /// instances carrying prov's ownership tag (pages of up to 1,000) and one
    /// DescribeSecurityGroups, instead of two calls per server.
    fn read_batch(&self) -> usize {
        READ_BATCH
    }

    async fn get_servers_info(&self, ids: &[String]) -> Vec<ExtResult<Option<ServerInfo>>> {
        const OP: &str = "get-server-info";
        let owned = match self.owned_instances(OP).await {
            Ok(owned) => owned,
            Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let groups: Vec<String> = ids
            .iter()
            .filter_map(|id| owned.get(id))
            .flat_map(|i| i.security_groups().iter().filter_map(|g| g.group_id()))
            .map(str::to_string)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let rules = match self.rules_of_groups(OP, groups).await {
            Ok(rules) => rules,
            Err(e) => return ids.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(match owned.get(id) {
                Some(inst) => {
                    let firewall = inst
                        .security_groups()
                        .iter()
                        .filter_map(|g| rules.get(g.group_id()?))
                        .flatten()
                        .cloned()
                        .collect();
                    Ok(Some(self.to_info(inst, firewall)))
                }
                // Not tagged by prov (adopted or imported), or gone: asked alone.
                None => self.get_server_info(id).await,
            });
        }
        out
    }

    async fn get_server_info(&self, id: &str) -> ExtResult<Option<ServerInfo>> {
        const OP: &str = "get-server-info";
        match self.instance(OP, id).await? {
            None => Ok(None),
            Some(inst) => {
                let rules = self.firewall_of(OP, &inst).await?;
                Ok(Some(self.to_info(&inst, rules)))
            }
        }
    }

    async fn start_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "start-server";
        self.require_instance(OP, id).await?;
        self.client()
            .await
            .start_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, Some(id), e))?;
        self.wait_for(OP, id, InstanceStateName::Running).await
    }

    async fn stop_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "stop-server";
        self.require_instance(OP, id).await?;
        self.client()
            .await
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, Some(id), e))?;
        self.wait_for(OP, id, InstanceStateName::Stopped).await
    }

    async fn reboot_server(&self, id: &str) -> ExtResult<()> {
        const OP: &str = "reboot-server";
        self.require_instance(OP, id).await?;
        self.client()
            .await
            .reboot_instances()
            .instance_ids(id)
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, Some(id), e))?;
        Ok(())
    }

    async fn update_server(&self, id: &str, update: &ServerUpdate) -> ExtResult<ServerInfo> {
        const OP: &str = "update-server";
        let (before, after) = (&update.before, &update.after);
        let invalid = |m: String| self.err(OP, Some(id), ErrorKind::Invalid, m);
        for (attr, changed) in [
            ("zone", before.zone != after.zone),
            ("os", before.os != after.os),
            ("hostname", before.hostname != after.hostname),
            ("ssh_keys", before.ssh_keys != after.ssh_keys),
        ] {
            if changed {
                return Err(invalid(format!(
                    "{attr} cannot change in place; it forces a replacement"
                )));
            }
        }
        self.check_spec(OP, after)?;
        let inst = self.require_instance(OP, id).await?;
        let c = self.client().await;

        if before.tags != after.tags {
            let removed: Vec<Tag> = before
                .tags
                .keys()
                .filter(|k| !after.tags.contains_key(*k))
                .map(|k| Tag::builder().key(k).build())
                .collect();
            if !removed.is_empty() {
                c.delete_tags()
                    .resources(id)
                    .set_tags(Some(removed))
                    .send()
                    .await
                    .map_err(|e| self.sdk_err(OP, Some(id), e))?;
            }
            let mut set: Vec<Tag> = after.tags.iter().map(|(k, v)| tag(k, v)).collect();
            if before.tags.contains_key(NAME_TAG) && !after.tags.contains_key(NAME_TAG) {
                set.push(tag(NAME_TAG, &after.hostname));
            }
            if !set.is_empty() {
                c.create_tags()
                    .resources(id)
                    .set_tags(Some(set))
                    .send()
                    .await
                    .map_err(|e| self.sdk_err(OP, Some(id), e))?;
            }
        }

        if before.firewall_rules != after.firewall_rules {
            let group = self.own_group(OP, &inst).await?.ok_or_else(|| {
                invalid("the instance has no security group made by prov to change".into())
            })?;
            self.set_rules(OP, id, &group, &after.firewall_rules)
                .await?;
        }

        if before.plan != after.plan {
            // An instance type changes only while stopped: stop, modify, start again if it ran.
            let was_running = matches!(
                inst.state().and_then(|s| s.name()),
                Some(InstanceStateName::Running) | Some(InstanceStateName::Pending)
            );
            if was_running {
                c.stop_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| self.sdk_err(OP, Some(id), e))?;
                self.wait_for(OP, id, InstanceStateName::Stopped).await?;
            }
            c.modify_instance_attribute()
                .instance_id(id)
                .instance_type(AttributeValue::builder().value(&after.plan).build())
                .send()
                .await
                .map_err(|e| self.sdk_err(OP, Some(id), e))?;
            if was_running {
                c.start_instances()
                    .instance_ids(id)
                    .send()
                    .await
                    .map_err(|e| self.sdk_err(OP, Some(id), e))?;
                self.wait_for(OP, id, InstanceStateName::Running).await?;
            }
        }
        self.info_of(OP, id).await
    }

    async fn get_pricing(&self) -> ExtResult<Vec<Pricing>> {
        Ok(mapping::pricing())
    }

    async fn get_plans(&self) -> ExtResult<Vec<PlanInfo>> {
        const OP: &str = "get-plans";
        let c = self.client().await;
        let mut plans = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            let out = c
                .describe_instance_types()
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.sdk_err(OP, None, e))?;
            for t in out.instance_types() {
                let Some(name) = t.instance_type() else {
                    continue;
                };
                plans.push(PlanInfo {
                    name: name.as_str().to_string(),
                    cores: t
                        .v_cpu_info()
                        .and_then(|v| v.default_v_cpus())
                        .unwrap_or(0)
                        .max(0) as u32,
                    memory_mb: t
                        .memory_info()
                        .and_then(|m| m.size_in_mib())
                        .unwrap_or(0)
                        .max(0) as u64,
                    storage_gb: t
                        .instance_storage_info()
                        .and_then(|s| s.total_size_in_gb())
                        .unwrap_or(0)
                        .max(0) as u64,
                });
            }
            token = out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        plans.dedup_by(|a, b| a.name == b.name);
        Ok(plans)
    }

    async fn get_zones(&self) -> ExtResult<Vec<Zone>> {
        const OP: &str = "get-zones";
        let out = self
            .client()
            .await
            .describe_availability_zones()
            .send()
            .await
            .map_err(|e| self.sdk_err(OP, None, e))?;
        let mut zones: Vec<Zone> = out
            .availability_zones()
            .iter()
            .filter_map(|z| {
                Some(Zone {
                    name: z.zone_name()?.to_string(),
                    description: format!(
                        "{} ({})",
                        z.region_name().unwrap_or(&self.settings.region),
                        z.state().map(|s| s.as_str()).unwrap_or("unknown")
                    ),
                })
            })
            .collect();
        zones.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(zones)
    }

    /// The public address (private when it has none), port 22, the OS's default user (or
    /// `ssh_user`), and `ssh_key_path` when set.
    async fn get_ssh_access(&self, id: &str) -> ExtResult<SshAccess> {
        const OP: &str = "get-ssh-access";
        let info = self.info_of(OP, id).await?;
        let host = info
            .public_ip
            .clone()
            .or(info.private_ip.clone())
            .ok_or_else(|| {
                self.err(
                    OP,
                    Some(id),
                    ErrorKind::Failed,
                    "the instance has no address (is it running?)",
                )
            })?;
        Ok(SshAccess {
            host,
            port: 22,
            user: self
                .settings
                .ssh_user
                .clone()
                .unwrap_or_else(|| mapping::ssh_user(&info.os).to_string()),
            key_path: self.settings.ssh_key_path.clone(),
        })
    }

    async fn configure_firewall(&self, id: &str, rules: &[FirewallRule]) -> ExtResult<()> {
        const OP: &str = "configure-firewall";
        mapping::check_rules(rules).map_err(|m| self.err(OP, Some(id), ErrorKind::Invalid, m))?;
        let inst = self.require_instance(OP, id).await?;
        let group = self.own_group(OP, &inst).await?.ok_or_else(|| {
            self.err(
                OP,
                Some(id),
                ErrorKind::Invalid,
                "the instance has no security group made by prov to configure",
            )
        })?;
        self.set_rules(OP, id, &group, rules).await
    }
}
