//! `prov policy check` output: conftest's lines (`FAIL - FILE - NAMESPACE - MESSAGE`) with the rule and policy file under each, its summary line, and its JSON shape.

use super::Paint;
use prov_engine::policy::{Finding, Report};
use serde_json::{json, Value};

/// conftest's standard output, plus one line under each result naming the rule and the
/// policy file that produced it.
pub fn text(r: &Report, file: &str, p: Paint) -> String {
    let mut s = String::new();
    let indicator = if file == "-" {
        "-".to_string()
    } else {
        format!("- {file}")
    };
    let mut line = |label: String, ns: &str, f: &Finding| {
        s.push_str(&format!("{label} {indicator} - {ns} - {}\n", f.message));
        s.push_str(&p.dim(&format!("     {} in {}", f.rule, f.policies.join(", "))));
        s.push('\n');
    };
    for ns in &r.results {
        for f in &ns.warnings {
            line(p.yellow("WARN"), &ns.namespace, f);
        }
        for f in &ns.failures {
            line(p.red("FAIL"), &ns.namespace, f);
        }
        for f in &ns.exceptions {
            line(p.magenta("EXCP"), &ns.namespace, f);
        }
    }
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    let (fails, warns, excs, passed) = (r.failures(), r.warnings(), r.exceptions(), r.successes());
    let summary = format!(
        "{}, {passed} passed, {}, {}, {}",
        plural(fails + warns + excs + passed, "test"),
        plural(warns, "warning"),
        plural(fails, "failure"),
        plural(excs, "exception"),
    );
    let summary = if fails > 0 {
        p.red(&summary)
    } else if warns > 0 {
        p.yellow(&summary)
    } else {
        p.green(&summary)
    };
    s.push_str(&format!("\n{summary}\n"));
    s
}

/// conftest's `--output json`: one entry per namespace with `filename`, `namespace`,
/// `successes` and the `warnings`/`failures`/`exceptions` (`msg`, `metadata`), each result
/// also naming its `rule` and `policies`.
pub fn json(r: &Report, file: &str) -> Value {
    Value::Array(
        r.results
            .iter()
            .map(|ns| {
                json!({
                    "filename": file,
                    "namespace": ns.namespace,
                    "successes": ns.successes,
                    "warnings": ns.warnings,
                    "failures": ns.failures,
                    "exceptions": ns.exceptions,
                })
            })
            .collect(),
    )
}
