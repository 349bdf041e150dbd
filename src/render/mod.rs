//! Renderers: plan text, Markdown, the HTML report (with its SVG graph) and Terraform-shaped JSON over one review model, the plan's cost, apply progress; colours only when asked for.

pub mod cost;
pub mod dot;
pub mod html;
pub mod markdown;
pub mod policy;
pub mod progress;
pub mod review;
pub mod reviewed;
pub mod svg;
pub mod table;
pub mod text;
pub mod tfjson;

use crate::cli::{PlanFormat, ReportArgs};
use prov_engine::plan::Plan;

/// Prints a plan in the format `--format` asks for: the one place `prov plan` and `prov show
/// PLAN` print a plan. `full_plan` says where the whole plan is when Markdown leaves details out
/// (`--full-plan` wins); `keys` hash the secrets of the JSON's `prov.review`.
pub fn print_plan_report(
    p: &Plan,
    args: &ReportArgs,
    full_plan: &str,
    keys: &prov_engine::crypt::Keys,
    paint: Paint,
) -> Result<(), serde_json::Error> {
    let report = match args.format() {
        PlanFormat::Text => {
            // Written as it is laid out, not built whole first (megabytes at 10,000 resources).
            text::write_plan(&mut crate::out::Stdout::default(), p, paint);
            text::untrusted_note(p, paint)
        }
        PlanFormat::Json => {
            let review = prov_engine::plan::review::Review::of(p, keys);
            serde_json::to_string_pretty(&tfjson::reviewable(p, &review))? + "\n"
        }
        PlanFormat::Markdown => {
            markdown::plan(
                p,
                &markdown::Options {
                    max_bytes: args.max_bytes,
                    full_plan: args
                        .full_plan
                        .clone()
                        .unwrap_or_else(|| full_plan.to_string()),
                },
            ) + &untrusted_quote(p)
        }
        PlanFormat::Html => html::plan(p),
    };
    crate::out!("{report}");
    Ok(())
}

/// The untrusted plan's note as a Markdown quote (empty for other plans).
fn untrusted_quote(p: &Plan) -> String {
    let note = text::untrusted_note(p, Paint { on: false });
    if note.is_empty() {
        return note;
    }
    let quoted: Vec<String> = note.trim().lines().map(|l| format!("> {l}")).collect();
    format!("\n{}\n", quoted.join("\n>\n"))
}

/// ANSI colours, or nothing.
#[derive(Clone, Copy)]
pub struct Paint {
    pub on: bool,
}

impl Paint {
    fn wrap(self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
    pub fn green(self, s: &str) -> String {
        self.wrap("32", s)
    }
    pub fn yellow(self, s: &str) -> String {
        self.wrap("33", s)
    }
    pub fn red(self, s: &str) -> String {
        self.wrap("31", s)
    }
    pub fn magenta(self, s: &str) -> String {
        self.wrap("35", s)
    }
    pub fn bold(self, s: &str) -> String {
        self.wrap("1", s)
    }
    pub fn dim(self, s: &str) -> String {
        self.wrap("2", s)
    }
}

/// An engine error as text: each of its diagnostics an `error:` line of its own (the engine
/// does not label them); `error_text` prints such a message as it is.
pub fn engine_error(e: &prov_engine::error::EngineError) -> String {
    match e.diagnostics() {
        Some(d) if !d.is_empty() => d
            .iter()
            .map(|x| format!("error: {x}"))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => e.to_string(),
    }
}

/// An error as one JSON object (`{"error": {"message": ...}}`), printed on stdout by commands
/// run with `--json` or `--format json` besides the text on stderr.
pub fn json_error(msg: &str) -> String {
    // The text's `error:` labels are for people; a pipeline gets the messages themselves.
    let message: Vec<&str> = msg
        .lines()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    serde_json::json!({ "error": { "message": message.join("\n") } }).to_string()
}

/// An error message as printed on stderr. Messages that already carry their own `error:`
/// lines (lists of diagnostics, Nickel reports) are printed as they are.
pub fn error_text(msg: &str, color: bool) -> String {
    let p = Paint { on: color };
    if msg.starts_with("error") {
        msg.to_string()
    } else {
        format!("{} {msg}", p.red(&p.bold("error:")))
    }
}
