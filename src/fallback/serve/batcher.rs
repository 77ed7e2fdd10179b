//! Dynamic batching for one model. Requests wait in a bounded queue (a full queue refuses at
//! once, and the handler answers 503); an async collector takes them when the model's inference
//! thread is free and groups those of one shape, up to `max_batch_size` rows, waiting at most
//! `max_queue_delay` after the first of the batch arrived. Inference runs on the model's own
//! thread, one batch at a time. The collector only times and groups, so it is tested with paused
//! time and no model.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;

use super::runner::Runner;
use super::stats::ModelStats;
use crate::fallback::protocol::Tensor;
use crate::model::threads::with_threads;

/// One request waiting for the model.
pub struct Job {
    /// Inputs in the config's order.
    pub inputs: Vec<Tensor>,
    /// Batch rows it brings.
    pub rows: usize,
    /// When it was queued.
    pub queued: Instant,
    /// Where its outputs (or why it failed) go.
    pub reply: oneshot::Sender<Result<Vec<Tensor>, String>>,
}

impl Job {
    /// Whether two jobs can share a batch: every input of the same size past the batch rows.
    fn fits(&self, other: &Job) -> bool {
        self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(&other.inputs)
                .all(|(a, b)| a.shape.get(1..) == b.shape.get(1..))
    }
}

/// How requests are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Most rows per batch; 1 runs each request alone.
    pub max_rows: usize,
    /// Longest the first request of a batch waits for others.
    pub max_queue_delay: Duration,
}

/// A batch for the inference thread; the permit marks the thread busy until it is dropped.
struct Batch {
    jobs: Vec<Job>,
    _busy: OwnedSemaphorePermit,
}

/// The queue in front of one model.
#[derive(Clone)]
pub struct Queue {
    tx: mpsc::Sender<Job>,
}

impl Queue {
    /// Queues a job without waiting; gives it back when the queue is full.
    pub fn try_submit(&self, job: Job) -> Result<(), Job> {
        self.tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job) => job,
        })
    }
}

/// Starts the collector on the current runtime and the inference thread; `queue` requests may
/// wait. Both end when every [`Queue`] is dropped.
pub fn spawn(
    runner: Runner,
    policy: Policy,
    queue: usize,
    threads: usize,
    stats: Arc<ModelStats>,
) -> std::io::Result<Queue> {
    let (tx, rx) = mpsc::channel(queue.max(1));
    // One batch at a time: the collector holds the only permit while a batch is out.
    let (work_tx, mut work_rx) = mpsc::channel::<Batch>(1);
    let name = format!("serve-{}", runner.config().name);
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            with_threads(threads, &name, || {
                while let Some(batch) = work_rx.blocking_recv() {
                    let started = std::time::Instant::now();
                    let (requests, replies): (Vec<_>, Vec<_>) = batch
                        .jobs
                        .into_iter()
                        .map(|j| ((j.inputs, j.rows), j.reply))
                        .unzip();
                    let rows: usize = requests.iter().map(|(_, r)| r).sum();
                    let result = runner.run(&requests);
                    stats.batches.fetch_add(1, Ordering::Relaxed);
                    stats.rows.fetch_add(rows as u64, Ordering::Relaxed);
                    stats.inference.record(started.elapsed());
                    match result {
                        Ok(outputs) => {
                            for (reply, outputs) in replies.into_iter().zip(outputs) {
                                let _ = reply.send(Ok(outputs));
                            }
                        }
                        Err(e) => {
                            tracing::error!(model = %runner.config().name, "inference failed: {e}");
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            })
        })?;
    tokio::spawn(collect(rx, work_tx, policy));
    Ok(Queue { tx })
}

/// Groups queued jobs into batches and hands each to the inference thread once it is free.
async fn collect(mut rx: mpsc::Receiver<Job>, work: mpsc::Sender<Batch>, policy: Policy) {
    let idle = Arc::new(Semaphore::new(1));
    let mut carried: Option<Job> = None;
    loop {
        let Ok(busy) = idle.clone().acquire_owned().await else {
            return;
        };
        let first = match carried.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let deadline = first.queued + policy.max_queue_delay;
        let mut rows = first.rows;
        let mut jobs = vec![first];
        while rows < policy.max_rows {
            let next = match rx.try_recv() {
                Ok(job) => Some(job),
                Err(mpsc::error::TryRecvError::Empty) => {
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .unwrap_or_default()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            let Some(job) = next else { break };
            if job.fits(&jobs[0]) && rows + job.rows <= policy.max_rows {
                rows += job.rows;
                jobs.push(job);
            } else {
                carried = Some(job);
                break;
            }
        }
        if work.send(Batch { jobs, _busy: busy }).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fallback::protocol::Values;
    use tokio::time::advance;

    fn job(rows: usize, width: usize) -> (Job, oneshot::Receiver<Result<Vec<Tensor>, String>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            inputs: vec![Tensor {
                name: "x".into(),
                shape: vec![rows, width],
                values: Values::Fp32(vec![0.0; rows * width]),
            }],
            rows,
            queued: Instant::now(),
            reply,
        };
        (job, answer)
    }

    /// A collector whose batches come out of the returned channel, each with its permit, so the
    /// test decides when the "thread" is free again.
    fn collector(policy: Policy) -> (mpsc::Sender<Job>, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(64);
        let (work_tx, work_rx) = mpsc::channel(1);
        tokio::spawn(collect(rx, work_tx, policy));
        (tx, work_rx)
    }

    fn sizes(batch: &Batch) -> Vec<usize> {
        batch.jobs.iter().map(|j| j.rows).collect()
    }

    const POLICY: Policy = Policy {
        max_rows: 4,
        max_queue_delay: Duration::from_millis(10),
    };

    #[tokio::test(start_paused = true)]
    async fn requests_arriving_within_the_delay_share_a_batch() {
        let (tx, mut batches) = collector(POLICY);
        tx.send(job(1, 3).0).await.unwrap();
        advance(Duration::from_millis(4)).await;
        tx.send(job(2, 3).0).await.unwrap();
        let first = batches.recv().await.unwrap();
        assert_eq!(sizes(&first), [1, 2]);
        assert_eq!(first.jobs[0].queued.elapsed(), POLICY.max_queue_delay);
        tx.send(job(1, 3).0).await.unwrap();
        drop(first);
        let second = batches.recv().await.unwrap();
        assert_eq!(sizes(&second), [1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_without_waiting_out_the_delay() {
        let (tx, mut batches) = collector(POLICY);
        let started = Instant::now();
        for rows in [2, 2, 1] {
            tx.send(job(rows, 3).0).await.unwrap();
        }
        let batch = batches.recv().await.unwrap();
        assert_eq!(sizes(&batch), [2, 2]);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn while_the_thread_is_busy_requests_pile_up_for_the_next_batch() {
        let (tx, mut batches) = collector(Policy {
            max_rows: 8,
            max_queue_delay: Duration::ZERO,
        });
        tx.send(job(1, 3).0).await.unwrap();
        let running = batches.recv().await.unwrap();
        for _ in 0..5 {
            tx.send(job(1, 3).0).await.unwrap();
        }
        advance(Duration::from_millis(50)).await;
        assert!(
            batches.try_recv().is_err(),
            "nothing while the thread is busy"
        );
        drop(running);
        assert_eq!(sizes(&batches.recv().await.unwrap()), [1; 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn other_shapes_and_no_batching_run_apart() {
        let (tx, mut batches) = collector(POLICY);
        tx.send(job(1, 3).0).await.unwrap();
        tx.send(job(1, 5).0).await.unwrap();
        let first = batches.recv().await.unwrap();
        assert_eq!(first.jobs[0].inputs[0].shape, [1, 3]);
        assert_eq!(first.jobs.len(), 1);
        drop(first);
        assert_eq!(
            batches.recv().await.unwrap().jobs[0].inputs[0].shape,
            [1, 5]
        );

        let (tx, mut batches) = collector(Policy {
            max_rows: 1,
            max_queue_delay: Duration::from_millis(10),
        });
        tx.send(job(1, 3).0).await.unwrap();
        tx.send(job(1, 3).0).await.unwrap();
        assert_eq!(batches.recv().await.unwrap().jobs.len(), 1);
    }
}
