//! Apply progress: a progress bar on a terminal, plain lines otherwise, JSON lines with `--json`; and the final summary.

use super::Paint;
use indicatif::{ProgressBar, ProgressStyle};
use prov_engine::apply::ApplyReport;
use prov_engine::events::{Event, EventSink, Step};
use std::io::IsTerminal;
use std::sync::Arc;

fn ing(step: Step) -> &'static str {
    match step {
        Step::Create => "creating",
        Step::Update => "updating",
        Step::Destroy => "destroying",
    }
}

fn ed(step: Step) -> &'static str {
    match step {
        Step::Create => "created",
        Step::Update => "updated",
        Step::Destroy => "destroyed",
    }
}

/// `--json`: every event as one JSON line.
fn json_sink() -> EventSink {
    Arc::new(move |e: Event| {
        if let Ok(line) = serde_json::to_string(&e) {
            crate::outln!("{line}");
        }
    })
}

/// A progress bar when stderr is a terminal (lines go through it), else none (plain lines).
fn terminal_bar() -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let b = ProgressBar::new(0);
    b.set_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {wide_msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    Some(b)
}

/// Builds the event sink for an apply.
pub fn sink(json: bool, paint: Paint) -> EventSink {
    if json {
        return json_sink();
    }
    let bar = terminal_bar();
    let line = move |bar: &Option<ProgressBar>, s: String| match bar {
        Some(b) => b.println(s),
        None => crate::outln!("{s}"),
    };
    Arc::new(move |e: Event| match e {
        Event::ApplyStarted { steps } => {
            if let Some(b) = &bar {
                b.set_length(steps as u64);
            }
        }
        Event::Waiting { .. } => {}
        Event::Running { address, step } => match &bar {
            Some(b) => b.set_message(format!("{} {address}", ing(step))),
            None => crate::outln!("{address}: {}...", ing(step)),
        },
        // On a terminal the latest line of a running script replaces the bar's message (a
        // failure's error carries the tail); in logs every line is kept.
        Event::Output { address, line: l } => match &bar {
            Some(b) => b.set_message(format!("{address}: {l}")),
            None => crate::outln!("{}", paint.dim(&format!("{address}: {l}"))),
        },
        Event::Succeeded {
            address,
            step,
            elapsed,
        } => {
            if let Some(b) = &bar {
                b.inc(1);
            }
            line(
                &bar,
                format!(
                    "{address}: {} ({:.1}s)",
                    paint.green(ed(step)),
                    elapsed.as_secs_f64()
                ),
            );
        }
        Event::Failed {
            address,
            step,
            error,
        } => {
            if let Some(b) = &bar {
                b.inc(1);
            }
            line(
                &bar,
                format!(
                    "{address}: {} to {}: {error}",
                    paint.red("failed"),
                    step.verb()
                ),
            );
        }
        Event::Skipped {
            address,
            step,
            because,
        } => {
            if let Some(b) = &bar {
                b.inc(1);
            }
            line(
                &bar,
                format!(
                    "{address}: {} ({} not done: {because} failed)",
                    paint.yellow("skipped"),
                    step.verb()
                ),
            );
        }
        Event::Interrupted { address, step } => line(
            &bar,
            format!(
                "{address}: {} (interrupted)",
                paint.yellow(&format!("{} not started", step.verb()))
            ),
        ),
        Event::StateWritten { .. } => {}
        Event::ApplyFinished { .. } => {
            if let Some(b) = &bar {
                b.finish_and_clear();
            }
        }
    })
}

/// The end-of-apply summary: counts, what failed and why, what was skipped, outputs.
pub fn summary(r: &ApplyReport, paint: Paint) -> String {
    let mut s = String::new();
    let head = format!(
        "Apply {}: {} succeeded, {} failed, {} skipped ({:.1}s).",
        if r.ok() {
            "complete"
        } else if r.interrupted.is_empty() {
            "incomplete"
        } else {
            "interrupted"
        },
        r.succeeded.len(),
        r.failed.len(),
        r.skipped.len(),
        r.elapsed.as_secs_f64()
    );
    s.push_str(&if r.ok() {
        paint.green(&paint.bold(&head))
    } else {
        paint.red(&paint.bold(&head))
    });
    s.push('\n');
    for (a, step, e) in &r.failed {
        s.push_str(&format!(
            "  {} {a} ({}): {e}\n",
            paint.red("failed:"),
            step.verb()
        ));
    }
    for (a, removed) in &r.rolled_back {
        s.push_str(&format!(
            "  {} {a}: removed {}\n",
            paint.yellow("rolled back:"),
            removed
                .iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (a, step, b) in &r.skipped {
        s.push_str(&format!(
            "  {} {a} ({}): depends on {b}, which failed\n",
            paint.yellow("skipped:"),
            step.verb()
        ));
    }
    if !r.interrupted.is_empty() {
        s.push_str(&format!(
            "  {} {} steps were not started\n",
            paint.yellow("interrupted:"),
            r.interrupted.len()
        ));
    }
    if !r.ok() {
        s.push_str("Every step that succeeded is recorded in the state; fix the cause and run apply again to finish the rest.\n");
    }
    if !r.outputs.is_empty() {
        s.push_str("\nOutputs:\n");
        for (k, v) in &r.outputs {
            let shown = super::text::output_value(v, r.sensitive_outputs.contains(k));
            s.push_str(&format!("  {k} = {shown}\n"));
        }
    }
    s
}
