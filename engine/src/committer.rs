//! The apply's commit pipeline: a thread that writes the walk's rounds to the state in order,
//! several queued rounds in one commit, while the walker goes on preparing the next ones.
//!
//! Why a thread: a commit is CPU (encoding, the backend's transaction) and then a wait for the
//! disk (sled's flush, PostgreSQL's round trip). On the walker's own thread both stopped
//! everything else — steps that finished meanwhile were not even looked at — and at zero
//! latency the walker was the bottleneck of an apply (at 10,000 servers, 0.94 s of its 1.45 s
//! were commits). Here the walker hands a round over and goes on; what it may not do before the
//! round is durable (report its steps done, start the steps it released) waits for the
//! round's completion, which arrives in submission order.
//!
//! It owns nothing of the walk: it writes what it is given and says when, in which serial.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use prov_state::{Change, StateStore};
use tokio::sync::mpsc as tmpsc;

use crate::error::EngineError;

/// One or more rounds written together.
pub(crate) struct Written {
    /// The rounds' tickets, in submission order.
    pub tickets: Vec<u64>,
    /// The serial that holds them; `Err(Some(e))` when this commit failed, `Err(None)` when it
    /// was never tried because an earlier one failed (nothing after a failed write is written).
    pub outcome: Result<u64, Option<EngineError>>,
}

/// The handle the walker keeps: submit rounds, await their completions in order.
pub(crate) struct Committer {
    jobs: Option<mpsc::Sender<(u64, Vec<Change>)>>,
    written: tmpsc::UnboundedReceiver<Written>,
    thread: Option<JoinHandle<()>>,
    next: u64,
    in_flight: usize,
}

impl Committer {
    /// Starts the committing thread for `store`.
    pub fn start(store: Arc<dyn StateStore>) -> Result<Committer, EngineError> {
        let (jobs, queue) = mpsc::channel::<(u64, Vec<Change>)>();
        let (tell, written) = tmpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("prov-commit".to_string())
            .spawn(move || run(&*store, &queue, &tell))
            .map_err(|e| EngineError::Internal(format!("cannot start the commit thread: {e}")))?;
        Ok(Committer {
            jobs: Some(jobs),
            written,
            thread: Some(thread),
            next: 0,
            in_flight: 0,
        })
    }

    /// Queues a round's writes; its ticket comes back in a [`Written`].
    pub fn submit(&mut self, changes: Vec<Change>) -> u64 {
        let ticket = self.next;
        self.next += 1;
        self.in_flight += 1;
        let sent = self.jobs.as_ref().map(|j| j.send((ticket, changes)));
        if !matches!(sent, Some(Ok(()))) {
            // The thread is gone (it only ends when the handle drops): say so in order.
            self.written.close();
        }
        ticket
    }

    /// The next completion. Cancel-safe. A thread that died reports the rounds it left as
    /// failed.
    pub async fn next(&mut self) -> Written {
        match self.written.recv().await {
            Some(w) => {
                self.in_flight -= w.tickets.len();
                w
            }
            None => {
                let tickets: Vec<u64> = (self.next - self.in_flight as u64..self.next).collect();
                self.in_flight = 0;
                Written {
                    tickets,
                    outcome: Err(Some(EngineError::Internal(
                        "the commit thread stopped".to_string(),
                    ))),
                }
            }
        }
    }
}

impl Drop for Committer {
    /// Lets the thread write what it was given, then waits for it: nothing submitted is left
    /// half-done when the walk returns.
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The thread: takes a round, and every round queued behind it, writes them as one commit and
/// reports them. After a failed commit it writes nothing more.
fn run(
    store: &dyn StateStore,
    queue: &mpsc::Receiver<(u64, Vec<Change>)>,
    tell: &tmpsc::UnboundedSender<Written>,
) {
    let mut failed = false;
    while let Ok((ticket, mut changes)) = queue.recv() {
        let mut tickets = vec![ticket];
        while let Ok((t, more)) = queue.try_recv() {
            tickets.push(t);
            changes.extend(more);
        }
        let outcome = if failed {
            Err(None)
        } else {
            store.commit(&changes).map_err(|e| {
                failed = true;
                Some(EngineError::State(e))
            })
        };
        drop(changes);
        if tell.send(Written { tickets, outcome }).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::FailingStore;
    use prov_state::{MemoryStore, PendingOp, StateRead};
    use std::time::Duration;

    fn note(address: &str) -> Change {
        Change::PutPending(PendingOp {
            address: address.to_string(),
            operation: "create".to_string(),
            kind: "server".to_string(),
            implementation: "fake".to_string(),
            provider_id: None,
            spec: serde_json::json!({}),
            dependencies: Vec::new(),
            started_at: 0,
            run_id: "test".to_string(),
        })
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
    }

    /// Rounds handed over while a commit is being written go out together in the next one,
    /// reported in the order they were handed over, each written once.
    #[test]
    fn rounds_queued_behind_a_commit_are_written_together_in_order() {
        let inner = Arc::new(MemoryStore::new());
        let store =
            Arc::new(FailingStore::new(inner.clone(), usize::MAX).slow(Duration::from_millis(200)));
        let mut c = Committer::start(store.clone()).unwrap();
        let tickets: Vec<u64> = ["server.a", "server.b", "server.c", "server.d"]
            .iter()
            .map(|a| c.submit(vec![note(a)]))
            .collect();
        assert_eq!(tickets, [0, 1, 2, 3]);
        let mut reported = Vec::new();
        let mut serials = Vec::new();
        rt().block_on(async {
            while reported.len() < 4 {
                let w = c.next().await;
                serials.push(w.outcome.expect("written"));
                reported.extend(w.tickets);
            }
        });
        assert_eq!(reported, [0, 1, 2, 3]);
        // The first one went alone at once (or with the others, had they been quicker); the
        // rest waited behind its 200 ms and were merged: never one commit each.
        assert!(store.commits() <= 2, "{} commits", store.commits());
        assert!(serials.windows(2).all(|w| w[0] < w[1]), "{serials:?}");
        let pending = inner.snapshot().unwrap().pending;
        assert_eq!(pending.len(), 4, "{pending:?}");
    }

    /// A store that panics mid-commit stops the thread: every round handed over, before or
    /// after, comes back failed (nothing hangs, nothing is reported written).
    #[test]
    fn a_commit_thread_that_stopped_fails_every_round() {
        let inner = Arc::new(MemoryStore::new());
        let store = Arc::new(
            FailingStore::new(inner.clone(), usize::MAX)
                .panicking_at(1)
                .slow(Duration::from_millis(50)),
        );
        let mut c = Committer::start(store.clone()).unwrap();
        c.submit(vec![note("server.a")]);
        c.submit(vec![note("server.b")]);
        let stopped = |w: &Written| matches!(&w.outcome, Err(Some(EngineError::Internal(m))) if m.contains("stopped"));
        let (before, after) = rt().block_on(async {
            let before = c.next().await;
            c.submit(vec![note("server.c")]);
            (before, c.next().await)
        });
        assert_eq!(before.tickets, [0, 1]);
        assert!(stopped(&before));
        assert_eq!(after.tickets, [2]);
        assert!(stopped(&after));
        assert!(inner.snapshot().unwrap().pending.is_empty());
    }

    /// A commit that fails is reported with its error; what was queued behind it is never
    /// written (reported as not tried), and nothing handed over later is either.
    #[test]
    fn nothing_is_written_after_a_failed_commit() {
        let inner = Arc::new(MemoryStore::new());
        let store = Arc::new(FailingStore::new(inner.clone(), 1).slow(Duration::from_millis(100)));
        let mut c = Committer::start(store.clone()).unwrap();
        c.submit(vec![note("server.a")]);
        c.submit(vec![note("server.b")]);
        let (first, second, third) = rt().block_on(async {
            let first = c.next().await;
            let second = if first.tickets.len() < 2 {
                Some(c.next().await)
            } else {
                None
            };
            c.submit(vec![note("server.c")]);
            (first, second, c.next().await)
        });
        assert!(matches!(first.outcome, Err(Some(EngineError::State(_)))));
        if let Some(second) = second {
            assert_eq!(second.tickets, [1]);
            assert!(matches!(second.outcome, Err(None)));
        }
        assert_eq!(third.tickets, [2]);
        assert!(matches!(third.outcome, Err(None)));
        assert_eq!(store.commits(), 1, "nothing tried after the failure");
        assert!(inner.snapshot().unwrap().pending.is_empty());
    }
}
