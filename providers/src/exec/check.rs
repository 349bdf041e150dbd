//! `prov extension validate` for exec providers: the `[exec]` section, then the program's `info`
//! answer (it must answer, and declare the seed's core operations).

use super::{ExecProvider, ExecSpec};
use prov_engine::extension::check::{Finding, Rule, PROVIDER_OPERATIONS};
use prov_engine::extension::Extension;
use prov_engine::registry::ExtContext;
use prov_engine::traits::Provider;
use std::sync::Arc;

/// The seed's other provider operations: recommended (plans, pricing, SSH and firewalls need
/// them), so their absence is a warning.
const RECOMMENDED: &[&str] = &[
    "get-pricing",
    "get-plans",
    "get-zones",
    "get-ssh-access",
    "configure-firewall",
];

/// Interface findings for the provider extension `ext`; runs its program once (`info`) with
/// `settings` in a scratch workspace directory `scratch`.
pub async fn check(
    ext: &Extension,
    settings: &serde_json::Value,
    scratch: &std::path::Path,
) -> Vec<Finding> {
    let manifest = ext.dir.join("manifest.toml");
    let spec = match ExecSpec::from_extension(ext) {
        Ok(s) => s,
        Err(e) => {
            return vec![Finding::error(
                Rule::Interface,
                Some(manifest),
                e.to_string(),
            )]
        }
    };
    let program = spec.program.command.clone();
    let ctx = ExtContext {
        workspace_dir: scratch.to_path_buf(),
        workspace_name: "prov-extension-validate".into(),
        name: ext.name.to_string(),
        settings: settings.clone(),
    };
    let provider = match ExecProvider::new(Arc::new(spec), &ctx) {
        Ok(p) => p,
        Err(e) => {
            return vec![Finding::error(
                Rule::Interface,
                Some(manifest),
                e.to_string(),
            )]
        }
    };
    let info = match provider.info().await {
        Ok(i) => i,
        Err(e) => {
            return vec![Finding::error(
                Rule::Interface,
                Some(program),
                format!("`info` does not answer: {e}"),
            )]
        }
    };
    let mut out = Vec::new();
    let declared = |op: &str| info.supported_operations.iter().any(|o| o == op);
    for op in PROVIDER_OPERATIONS {
        if !declared(op) {
            out.push(Finding::error(
                Rule::Interface,
                Some(program.clone()),
                format!(
                    "`info` does not declare the required operation {op} (supported_operations: {})",
                    info.supported_operations.join(", ")
                ),
            ));
        }
    }
    for op in RECOMMENDED {
        if !declared(op) {
            out.push(Finding::warning(
                Rule::Interface,
                Some(program.clone()),
                format!("`info` does not declare {op}"),
            ));
        }
    }
    if info.name != ext.name.as_str() {
        out.push(Finding::warning(
            Rule::Interface,
            Some(program.clone()),
            format!(
                "`info` answers name {:?}, the manifest says {:?}",
                info.name,
                ext.name.as_str()
            ),
        ));
    }
    if info.version != ext.manifest.extension.version {
        out.push(Finding::warning(
            Rule::Interface,
            Some(program),
            format!(
                "`info` answers version {:?}, the manifest says {:?}",
                info.version, ext.manifest.extension.version
            ),
        ));
    }
    out
}
