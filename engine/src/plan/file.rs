//! The persisted plan file: a versioned JSON format kept apart from the in-memory `Plan`, with a checksum.

use super::cost::{Cost, CostTotal, Money, Priced, ResourceCost};
use super::{Action, AttrDiff, DeposedChange, OutputChange, Plan, PlanMode, ResourceChange};
use crate::crypt::{Content, Keys};
use crate::drift::{Drift, DriftKind};
use crate::error::EngineError;
use crate::model::{Address, Lifecycle};
use crate::pending::{Outcome, Resolution};
use prov_state::{PendingOp, ResourceRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

pub const PLAN_FORMAT: &str = "prov-plan";
/// Version 2 added `cost`. Version 1 files are the same without it and are read as well (their
/// plans show no cost); the `*V1` structs below serve both.
pub const PLAN_FORMAT_VERSION: u32 = 2;
/// The oldest plan file version this prov reads.
pub const PLAN_FORMAT_OLDEST: u32 = 1;

#[derive(Serialize, Deserialize)]
struct PlanFileV1 {
    format: String,
    format_version: u32,
    prov_version: String,
    mode: String,
    lineage: String,
    serial: u64,
    config_hash: String,
    targets: Vec<String>,
    outputs: serde_json::Map<String, Value>,
    /// Absent in plan files written before sensitive outputs existed (none were then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    sensitive_outputs: Vec<String>,
    providers: serde_json::Map<String, Value>,
    changes: Vec<ChangeV1>,
    output_changes: Vec<OutputChangeV1>,
    resolutions: Vec<ResolutionV1>,
    drift: Vec<DriftV1>,
    refreshed: Vec<RefreshedV1>,
    /// Absent in plan files written before deposed objects were recorded (none were then).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deposed: Vec<DeposedV1>,
    /// Absent in plan files written before protections were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    protect: Vec<String>,
    /// Version 2: the plan's monthly cost (absent: not asked, or a version 1 file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cost: Option<CostV2>,
    /// The fields below are absent in plan files written before they existed.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    prior_outputs: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    timestamp: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    untrusted: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    unrefreshed: Vec<String>,
    /// The state backend the plan was made against (absent in older plan files: apply then
    /// finds the backend as a command without a plan does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    backend: Option<BackendV1>,
}

#[derive(Serialize, Deserialize)]
struct BackendV1 {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    workspace: String,
}

#[derive(Serialize, Deserialize)]
struct CostV2 {
    resources: Vec<ResourceCostV2>,
    totals: Vec<CostTotalV2>,
    unknown: Vec<String>,
    unpriced: usize,
}

#[derive(Serialize, Deserialize)]
struct ResourceCostV2 {
    address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deposed: Option<String>,
    before: Option<PricedV2>,
    after: Option<PricedV2>,
}

#[derive(Serialize, Deserialize)]
struct PricedV2 {
    provider: String,
    plan: String,
    zone: String,
    /// Hundredths of `currency`; both absent when the price is unknown.
    cents: Option<i64>,
    currency: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct CostTotalV2 {
    currency: String,
    before_cents: i64,
    after_cents: i64,
}

fn cost_v2(c: &Cost) -> CostV2 {
    let priced = |p: &Option<Priced>| {
        p.as_ref().map(|p| PricedV2 {
            provider: p.provider.clone(),
            plan: p.plan.clone(),
            zone: p.zone.clone(),
            cents: p.price.as_ref().map(|m| m.cents),
            currency: p.price.as_ref().map(|m| m.currency.clone()),
        })
    };
    CostV2 {
        resources: c
            .resources
            .iter()
            .map(|r| ResourceCostV2 {
                address: r.address.to_string(),
                deposed: r.deposed.clone(),
                before: priced(&r.before),
                after: priced(&r.after),
            })
            .collect(),
        totals: c
            .totals
            .iter()
            .map(|t| CostTotalV2 {
                currency: t.currency.clone(),
                before_cents: t.before_cents,
                after_cents: t.after_cents,
            })
            .collect(),
        unknown: c.unknown.clone(),
        unpriced: c.unpriced,
    }
}

fn cost_from_v2(c: CostV2) -> Result<Cost, String> {
    let priced = |p: Option<PricedV2>| {
        p.map(|p| Priced {
            provider: p.provider,
            plan: p.plan,
            zone: p.zone,
            price: match (p.cents, p.currency) {
                (Some(cents), Some(currency)) => Some(Money { cents, currency }),
                _ => None,
            },
        })
    };
    Ok(Cost {
        resources: c
            .resources
            .into_iter()
            .map(|r| {
                Ok(ResourceCost {
                    address: r.address.parse()?,
                    deposed: r.deposed,
                    before: priced(r.before),
                    after: priced(r.after),
                })
            })
            .collect::<Result<Vec<_>, String>>()?,
        totals: c
            .totals
            .into_iter()
            .map(|t| CostTotal {
                currency: t.currency,
                before_cents: t.before_cents,
                after_cents: t.after_cents,
            })
            .collect(),
        unknown: c.unknown,
        unpriced: c.unpriced,
    })
}

#[derive(Serialize, Deserialize)]
struct DeposedV1 {
    address: String,
    implementation: String,
    provider_id: String,
    before: Value,
    #[serde(default)]
    sensitive: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct DriftV1 {
    address: String,
    kind: DriftKindV1,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DriftKindV1 {
    Gone,
    Changed {
        diffs: Vec<DiffV1>,
    },
    Stopped,
    Version {
        recorded: Option<String>,
        real: Option<String>,
    },
    Unmanaged {
        provider: String,
        id: String,
        hostname: String,
    },
    Error {
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct RefreshedV1 {
    address: String,
    record: Option<ResourceRecord>,
}

#[derive(Serialize, Deserialize)]
struct ResolutionV1 {
    pending: PendingOp,
    outcome: OutcomeV1,
    note: String,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum OutcomeV1 {
    Adopt { record: Box<ResourceRecord> },
    Clear,
    DeleteRecord,
    FinishDelete { provider_id: String },
    DeposedGone { record: Box<ResourceRecord> },
}

#[derive(Serialize, Deserialize)]
struct OutputChangeV1 {
    name: String,
    before: Option<Value>,
    after: Option<Value>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ActionV1 {
    NoOp,
    Create,
    Update,
    Replace {
        reason: String,
        create_before_destroy: bool,
    },
    Delete {
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct DiffV1 {
    path: String,
    before: Option<Value>,
    after: Option<Value>,
    unknown: bool,
    forces_replacement: bool,
}

#[derive(Serialize, Deserialize)]
struct ChangeV1 {
    address: String,
    implementation: String,
    action: ActionV1,
    before: Option<Value>,
    after: Option<Value>,
    after_unknown: Value,
    config: Option<Value>,
    diffs: Vec<DiffV1>,
    depends_on: Vec<String>,
    prior_dependencies: Vec<String>,
    provider_id: Option<String>,
    lifecycle: Lifecycle,
    declared_at: Option<String>,
    #[serde(default)]
    sensitive: Vec<String>,
    /// Absent in plan files written before defaults were told apart (all were then shown).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    defaults: Vec<String>,
    /// Absent in plan files written before they were kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    computed: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    references: Vec<(String, Vec<String>)>,
}

fn to_v1(p: &Plan) -> PlanFileV1 {
    PlanFileV1 {
        prior_outputs: p.prior_outputs.clone(),
        timestamp: p.timestamp.clone(),
        untrusted: p.untrusted,
        unrefreshed: addrs_v1(&p.unrefreshed),
        backend: p.backend.as_ref().map(|b| BackendV1 {
            kind: b.kind.clone(),
            workspace: b.workspace.clone(),
        }),
        protect: addrs_v1(&p.protect),
        cost: p.cost.as_ref().map(cost_v2),
        deposed: p.deposed.iter().map(deposed_v1).collect(),
        format: PLAN_FORMAT.into(),
        format_version: PLAN_FORMAT_VERSION,
        prov_version: p.prov_version.clone(),
        mode: mode_v1(&p.mode).into(),
        drift: p
            .drift
            .iter()
            .map(|d| DriftV1 {
                address: d.address.clone(),
                kind: drift_kind_v1(&d.kind),
            })
            .collect(),
        refreshed: p
            .refreshed
            .iter()
            .map(|(a, r)| RefreshedV1 {
                address: a.to_string(),
                record: r.clone(),
            })
            .collect(),
        lineage: p.lineage.clone(),
        serial: p.serial,
        config_hash: p.config_hash.clone(),
        targets: addrs_v1(&p.targets),
        outputs: p.outputs.clone(),
        sensitive_outputs: p.sensitive_outputs.clone(),
        providers: p.providers.clone(),
        resolutions: p
            .resolutions
            .iter()
            .map(|r| ResolutionV1 {
                pending: r.pending.clone(),
                outcome: outcome_v1(&r.outcome),
                note: r.note.clone(),
            })
            .collect(),
        output_changes: p
            .output_changes
            .iter()
            .map(|o| OutputChangeV1 {
                name: o.name.clone(),
                before: o.before.clone(),
                after: o.after.clone(),
            })
            .collect(),
        changes: p.changes.iter().map(change_v1).collect(),
    }
}

fn from_v1(f: PlanFileV1) -> Result<Plan, String> {
    let changes = f
        .changes
        .into_iter()
        .map(change_from_v1)
        .collect::<Result<Vec<_>, String>>()?;
    let deposed = f
        .deposed
        .into_iter()
        .map(deposed_from_v1)
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Plan {
        cost: f.cost.map(cost_from_v2).transpose()?,
        prior_outputs: f.prior_outputs,
        timestamp: f.timestamp,
        untrusted: f.untrusted,
        unrefreshed: addrs_from_v1(&f.unrefreshed)?,
        backend: f.backend.map(|b| super::BackendRef {
            kind: b.kind,
            workspace: b.workspace,
        }),
        protect: addrs_from_v1(&f.protect)?,
        deposed,
        prov_version: f.prov_version,
        mode: mode_from_v1(&f.mode)?,
        lineage: f.lineage,
        serial: f.serial,
        config_hash: f.config_hash,
        changes,
        outputs: f.outputs,
        sensitive_outputs: f.sensitive_outputs,
        providers: f.providers,
        targets: addrs_from_v1(&f.targets)?,
        drift: f
            .drift
            .into_iter()
            .map(|d| Drift {
                address: d.address,
                kind: drift_kind_from_v1(d.kind),
            })
            .collect(),
        refreshed: f
            .refreshed
            .into_iter()
            .map(|r| Ok((r.address.parse::<Address>()?, r.record)))
            .collect::<Result<Vec<_>, String>>()?,
        tagged: Vec::new(),
        tagged_searched: false,
        resolutions: f
            .resolutions
            .into_iter()
            .map(|r| Resolution {
                pending: r.pending,
                outcome: outcome_from_v1(r.outcome),
                note: r.note,
            })
            .collect(),
        output_changes: f
            .output_changes
            .into_iter()
            .map(|o| OutputChange {
                name: o.name,
                before: o.before,
                after: o.after,
            })
            .collect(),
    })
}

fn addrs_v1(v: &[Address]) -> Vec<String> {
    v.iter().map(|a| a.to_string()).collect()
}

fn addrs_from_v1(v: &[String]) -> Result<Vec<Address>, String> {
    v.iter().map(|s| s.parse::<Address>()).collect()
}

fn mode_v1(m: &PlanMode) -> &'static str {
    match m {
        PlanMode::Normal => "normal",
        PlanMode::Destroy => "destroy",
        PlanMode::RefreshOnly => "refresh-only",
    }
}

fn mode_from_v1(m: &str) -> Result<PlanMode, String> {
    Ok(match m {
        "normal" => PlanMode::Normal,
        "destroy" => PlanMode::Destroy,
        "refresh-only" => PlanMode::RefreshOnly,
        m => return Err(format!("unknown plan mode {m:?}")),
    })
}

fn deposed_v1(d: &DeposedChange) -> DeposedV1 {
    DeposedV1 {
        address: d.address.to_string(),
        implementation: d.implementation.clone(),
        provider_id: d.provider_id.clone(),
        before: d.before.clone(),
        sensitive: d.sensitive.clone(),
    }
}

fn deposed_from_v1(d: DeposedV1) -> Result<DeposedChange, String> {
    Ok(DeposedChange {
        address: d.address.parse()?,
        implementation: d.implementation,
        provider_id: d.provider_id,
        before: d.before,
        sensitive: d.sensitive,
    })
}

fn drift_kind_v1(k: &DriftKind) -> DriftKindV1 {
    match k {
        DriftKind::Gone => DriftKindV1::Gone,
        DriftKind::Changed(diffs) => DriftKindV1::Changed {
            diffs: diffs.iter().map(diff_v1).collect(),
        },
        DriftKind::Stopped => DriftKindV1::Stopped,
        DriftKind::Version { recorded, real } => DriftKindV1::Version {
            recorded: recorded.clone(),
            real: real.clone(),
        },
        DriftKind::Unmanaged {
            provider,
            id,
            hostname,
        } => DriftKindV1::Unmanaged {
            provider: provider.clone(),
            id: id.clone(),
            hostname: hostname.clone(),
        },
        DriftKind::Error(m) => DriftKindV1::Error { message: m.clone() },
    }
}

fn drift_kind_from_v1(k: DriftKindV1) -> DriftKind {
    match k {
        DriftKindV1::Gone => DriftKind::Gone,
        DriftKindV1::Changed { diffs } => {
            DriftKind::Changed(diffs.into_iter().map(diff_from_v1).collect())
        }
        DriftKindV1::Stopped => DriftKind::Stopped,
        DriftKindV1::Version { recorded, real } => DriftKind::Version { recorded, real },
        DriftKindV1::Unmanaged {
            provider,
            id,
            hostname,
        } => DriftKind::Unmanaged {
            provider,
            id,
            hostname,
        },
        DriftKindV1::Error { message } => DriftKind::Error(message),
    }
}

fn outcome_v1(o: &Outcome) -> OutcomeV1 {
    match o {
        Outcome::Adopt(rec) => OutcomeV1::Adopt {
            record: rec.clone(),
        },
        Outcome::Clear => OutcomeV1::Clear,
        Outcome::DeleteRecord => OutcomeV1::DeleteRecord,
        Outcome::FinishDelete { provider_id } => OutcomeV1::FinishDelete {
            provider_id: provider_id.clone(),
        },
        Outcome::DeposedGone(rec) => OutcomeV1::DeposedGone {
            record: rec.clone(),
        },
    }
}

fn outcome_from_v1(o: OutcomeV1) -> Outcome {
    match o {
        OutcomeV1::Adopt { record } => Outcome::Adopt(record),
        OutcomeV1::Clear => Outcome::Clear,
        OutcomeV1::DeleteRecord => Outcome::DeleteRecord,
        OutcomeV1::FinishDelete { provider_id } => Outcome::FinishDelete { provider_id },
        OutcomeV1::DeposedGone { record } => Outcome::DeposedGone(record),
    }
}

fn action_v1(a: &Action) -> ActionV1 {
    match a {
        Action::NoOp => ActionV1::NoOp,
        Action::Create => ActionV1::Create,
        Action::Update => ActionV1::Update,
        Action::Replace {
            reason,
            create_before_destroy,
        } => ActionV1::Replace {
            reason: reason.clone(),
            create_before_destroy: *create_before_destroy,
        },
        Action::Delete { reason } => ActionV1::Delete {
            reason: reason.clone(),
        },
    }
}

fn action_from_v1(a: ActionV1) -> Action {
    match a {
        ActionV1::NoOp => Action::NoOp,
        ActionV1::Create => Action::Create,
        ActionV1::Update => Action::Update,
        ActionV1::Replace {
            reason,
            create_before_destroy,
        } => Action::Replace {
            reason,
            create_before_destroy,
        },
        ActionV1::Delete { reason } => Action::Delete { reason },
    }
}

fn change_v1(c: &ResourceChange) -> ChangeV1 {
    ChangeV1 {
        address: c.address.to_string(),
        implementation: c.implementation.clone(),
        action: action_v1(&c.action),
        before: c.before.clone(),
        after: c.after.clone(),
        after_unknown: c.after_unknown.clone(),
        config: c.config.as_deref().cloned(),
        diffs: c.diffs.iter().map(diff_v1).collect(),
        depends_on: addrs_v1(&c.depends_on),
        prior_dependencies: addrs_v1(&c.prior_dependencies),
        provider_id: c.provider_id.clone(),
        lifecycle: c.lifecycle.clone(),
        declared_at: c.declared_at.clone(),
        sensitive: c.sensitive.clone(),
        defaults: c.defaults.clone(),
        computed: c.computed.clone(),
        references: c.references.clone(),
    }
}

fn change_from_v1(c: ChangeV1) -> Result<ResourceChange, String> {
    Ok(ResourceChange {
        address: c.address.parse()?,
        implementation: c.implementation,
        action: action_from_v1(c.action),
        before: c.before,
        after: c.after,
        after_unknown: c.after_unknown,
        config: c.config.map(std::sync::Arc::new),
        diffs: c.diffs.into_iter().map(diff_from_v1).collect(),
        depends_on: addrs_from_v1(&c.depends_on)?,
        prior_dependencies: addrs_from_v1(&c.prior_dependencies)?,
        provider_id: c.provider_id,
        lifecycle: c.lifecycle,
        declared_at: c.declared_at,
        sensitive: c.sensitive,
        defaults: c.defaults,
        computed: c.computed,
        references: c.references,
    })
}

fn diff_v1(d: &AttrDiff) -> DiffV1 {
    DiffV1 {
        path: d.path.clone(),
        before: d.before.clone(),
        after: d.after.clone(),
        unknown: d.unknown,
        forces_replacement: d.forces_replacement,
    }
}

fn diff_from_v1(d: DiffV1) -> AttrDiff {
    AttrDiff {
        path: d.path,
        before: d.before,
        after: d.after,
        unknown: d.unknown,
        forces_replacement: d.forces_replacement,
    }
}

fn checksum(body: &[u8]) -> String {
    let h = Sha256::digest(body);
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Serialises a plan: `{"checksum": ..., "plan": {...}}`; the checksum covers the plan bytes.
pub fn to_bytes(p: &Plan) -> Vec<u8> {
    let body = serde_json::to_string(&to_v1(p)).expect("plan serialises");
    let sum = checksum(body.as_bytes());
    format!("{{\"checksum\":\"{sum}\",\"plan\":{body}}}\n").into_bytes()
}

/// Parses a plan file, checking format, version and checksum. Plans holding state values an
/// older prov wrote deeper than serde_json reads by default are read too (`read_deep`).
pub fn from_bytes(bytes: &[u8]) -> Result<Plan, String> {
    prov_state::read_deep(|| from_bytes_shallow(bytes))
}

fn from_bytes_shallow(bytes: &[u8]) -> Result<Plan, String> {
    let v: Value = prov_state::from_slice(bytes)
        .map_err(|e| format!("not a prov plan file (invalid JSON: {e})"))?;
    let body = v
        .get("plan")
        .ok_or("not a prov plan file (no \"plan\" field)")?;
    let fmt = body
        .get("format")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if fmt != PLAN_FORMAT {
        return Err(format!("not a prov plan file (format {fmt:?})"));
    }
    let ver = body
        .get("format_version")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    if !(u64::from(PLAN_FORMAT_OLDEST)..=u64::from(PLAN_FORMAT_VERSION)).contains(&ver) {
        return Err(format!(
            "plan format version {ver} is not supported by this prov (it reads versions {PLAN_FORMAT_OLDEST} to {PLAN_FORMAT_VERSION}); make the plan again with this version"
        ));
    }

    let want = v
        .get("checksum")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let got = checksum(
        serde_json::to_string(body)
            .map_err(|e| e.to_string())?
            .as_bytes(),
    );
    if want != got {
        return Err(
            "checksum mismatch: the plan file was modified or truncated after it was written"
                .into(),
        );
    }
    let f: PlanFileV1 =
        serde_json::from_value(body.clone()).map_err(|e| format!("malformed plan: {e}"))?;
    from_v1(f)
}

/// Writes a plan file with mode 0600 (it holds provider settings), atomically; encrypted with
/// the current key when one is configured (`crate::crypt`).
pub fn write(path: &Path, p: &Plan, keys: &Keys) -> Result<(), EngineError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let io = |e| EngineError::Io {
        context: format!("writing plan file {}", path.display()),
        source: e,
    };
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(&keys.seal(Content::Plan, &to_bytes(p)))
        .map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

/// Reads a plan file, decrypting it with whichever configured key it names (plain files are
/// read as they are).
pub fn read(path: &Path, keys: &Keys) -> Result<Plan, EngineError> {
    let bytes = std::fs::read(path).map_err(|e| EngineError::PlanFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let plain = keys
        .open(Content::Plan, &bytes)
        .map_err(|e| EngineError::PlanFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    from_bytes(&plain).map_err(|detail| EngineError::PlanFile {
        path: path.to_path_buf(),
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn file(body: Value) -> Vec<u8> {
        let text = serde_json::to_string(&body).unwrap();
        format!(
            "{{\"checksum\":\"{}\",\"plan\":{text}}}",
            checksum(text.as_bytes())
        )
        .into_bytes()
    }

    fn v1_body() -> Value {
        json!({
            "format": PLAN_FORMAT, "format_version": 1, "prov_version": "0.1.0",
            "mode": "normal", "lineage": "ab12", "serial": 3, "config_hash": "00",
            "targets": [], "outputs": {}, "providers": {}, "changes": [],
            "output_changes": [], "resolutions": [], "drift": [], "refreshed": [],
        })
    }

    #[test]
    fn version_1_files_are_read_without_cost_and_version_2_keeps_it() {
        let mut p = from_bytes(&file(v1_body())).unwrap();
        assert_eq!(p.cost, None);
        p.cost = Some(Cost {
            resources: vec![ResourceCost {
                address: "server.web".parse().unwrap(),
                deposed: None,
                before: None,
                after: Some(Priced {
                    provider: "sim".into(),
                    plan: "large".into(),
                    zone: "sim-a".into(),
                    price: Some(Money {
                        cents: 4000,
                        currency: "SIM".into(),
                    }),
                }),
            }],
            totals: vec![CostTotal {
                currency: "SIM".into(),
                before_cents: 0,
                after_cents: 4000,
            }],
            unknown: vec!["provider x has no price for plan y (server.z)".into()],
            unpriced: 1,
        });
        let bytes = to_bytes(&p);
        assert!(String::from_utf8_lossy(&bytes).contains("\"format_version\":2"));
        assert_eq!(from_bytes(&bytes).unwrap(), p);

        let mut newer = v1_body();
        newer["format_version"] = json!(PLAN_FORMAT_VERSION + 1);
        let e = from_bytes(&file(newer)).unwrap_err();
        assert!(e.contains("it reads versions 1 to 2"), "{e}");
    }
}
