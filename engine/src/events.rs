//! Typed events the engine emits while it works; the CLI renders them, the engine never prints.

use crate::model::Address;
use std::sync::Arc;
use std::time::Duration;

/// The step of an apply a resource is in: a replace is a destroy step and a create step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Create,
    Update,
    Destroy,
}

impl Step {
    pub fn verb(self) -> &'static str {
        match self {
            Step::Create => "create",
            Step::Update => "update",
            Step::Destroy => "destroy",
        }
    }
}

#[derive(Clone, Debug, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The apply is about to start this many steps.
    ApplyStarted {
        steps: usize,
    },
    /// Waiting for its dependencies or for a free slot.
    Waiting {
        address: Address,
        step: Step,
    },
    Running {
        address: Address,
        step: Step,
    },
    /// A line of output from a running step (scripts, progress).
    Output {
        address: Address,
        line: String,
    },
    Succeeded {
        address: Address,
        step: Step,
        #[serde(with = "millis")]
        elapsed: Duration,
    },
    Failed {
        address: Address,
        step: Step,
        error: String,
    },
    /// Not run because something it depends on failed.
    Skipped {
        address: Address,
        step: Step,
        because: Address,
    },
    /// Not started because the apply was interrupted.
    Interrupted {
        address: Address,
        step: Step,
    },
    /// Finished steps were written to the state.
    StateWritten {
        serial: u64,
        records: usize,
    },
    /// Every step has succeeded, failed or been skipped.
    ApplyFinished {
        succeeded: usize,
        failed: usize,
        skipped: usize,
    },
}

mod millis {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

/// Where events go. Cheap to clone; called from the coordinator and from running steps.
pub type EventSink = Arc<dyn Fn(Event) + Send + Sync>;

/// A sink that drops everything (for tests and library callers that do not watch).
pub fn discard() -> EventSink {
    Arc::new(|_| {})
}
