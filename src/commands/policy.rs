//! `prov policy check`: Rego policies over a plan's Terraform-shaped JSON, with conftest's conventions and exit codes.

use super::{CmdResult, Failure};
use crate::cli::PolicyCommand;
use crate::context::Context;
use crate::render::{policy as render, tfjson, Paint};
use prov_engine::crypt::{self, Content};
use prov_engine::plan::file as planfile;
use prov_engine::policy::{self, PolicyOptions};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn run(ctx: &Context, cmd: PolicyCommand) -> CmdResult {
    let PolicyCommand::Check {
        plan,
        policy: policy_paths,
        data,
        namespace,
        all_namespaces,
        fail_on_warn,
        rego_version,
        json,
    } = cmd;
    let input = input_document(ctx, &plan)?;
    // Relative to `-C`; shown as given when there is none.
    let at = |p: &PathBuf| -> PathBuf {
        if ctx.base == Path::new(".") {
            p.clone()
        } else {
            ctx.base.join(p)
        }
    };
    let policy_paths: Vec<PathBuf> = policy_paths.iter().map(at).collect();
    // Data files beside the policies are data (run the same directory under conftest with
    // `--data` naming it too: docs/policy.md).
    let mut data_paths = policy_paths.clone();
    data_paths.extend(data.iter().map(at));
    data_paths.dedup();
    let opts = PolicyOptions {
        policy_paths,
        data_paths,
        namespaces: namespace,
        all_namespaces,
        rego_v0: rego_version == "v0",
    };
    let report = policy::check(&input, &opts)?;
    let file = plan.display().to_string();
    if json {
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&render::json(&report, &file))?
        );
    } else {
        crate::out!("{}", render::text(&report, &file, Paint { on: ctx.color }));
    }
    Ok(report.exit_code(fail_on_warn))
}

/// The document policies read as `input`: Terraform-shaped plan JSON as given, or a saved
/// plan rendered as `prov show --json` renders it (secrets redacted).
fn input_document(ctx: &Context, plan: &Path) -> Result<Value, Failure> {
    let stdin = plan == Path::new("-");
    let path = ctx.base.join(plan);
    let bytes = if stdin {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| Failure(format!("reading the plan from standard input: {e}")))?;
        b
    } else {
        if path.is_dir() {
            return Err(Failure(format!(
                "{}: is a directory; pass a saved plan (`prov plan --out plan.bin`) or plan JSON (`prov plan --json > plan.json`)",
                plan.display()
            )));
        }
        std::fs::read(&path).map_err(|e| Failure(format!("{}: {e}", plan.display())))?
    };
    // An encrypted saved plan is JSON too (its envelope has a `format_version` of its own): it
    // must be decrypted, never checked as if it were plan JSON.
    let parsed: Option<Value> = if crypt::is_encrypted(&bytes) {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    match parsed {
        // Terraform's plan or state JSON (`prov plan --json`, `prov show --json`, Terraform's own).
        Some(Value::Object(o)) if o.contains_key("plan") && o.contains_key("checksum") => {
            saved_plan(ctx, plan, stdin, &bytes)
        }
        Some(v) if v.get("format_version").is_some() => Ok(v),
        Some(_) => {
            Err(Failure(format!(
                "{}: JSON that is neither plan JSON (no `format_version`: make it with `prov plan --json` or `prov show --json PLANFILE`) nor a saved plan",
                plan.display()
            )))
        }
        // A saved plan, encrypted or not, or bytes that are no JSON (said as a plan file's error).
        None => saved_plan(ctx, plan, stdin, &bytes),
    }
}

/// A saved plan rendered as `prov show --json` renders it, decrypted with the configured keys
/// when it was written encrypted.
fn saved_plan(ctx: &Context, plan: &Path, stdin: bool, bytes: &[u8]) -> Result<Value, Failure> {
    let shown = if stdin {
        "standard input".to_string()
    } else {
        plan.display().to_string()
    };
    let bad = |e: String| Failure(format!("cannot read plan file {shown}: {e}"));
    let plain = ctx
        .keys()?
        .open(Content::Plan, bytes)
        .map_err(|e| bad(e.to_string()))?;
    Ok(tfjson::plan(&planfile::from_bytes(&plain).map_err(bad)?))
}
