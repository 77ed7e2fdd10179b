//! The text stage: texts from MQTT, standard input or a file wait in one bounded queue (inputs
//! wait when it is full; nothing is dropped), those waiting together run as one batch, and each
//! result is published on `P/D/text/out` through the outbox. Results scored in the fallback band
//! say `verified: false` and go to the host, whose answer follows as a second message. At
//! shutdown the queue is drained before the stage ends.

use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::AgentError;
use crate::config::TextConfig;
use crate::fallback::text::TextFallback;
use crate::observe::counters::TextStats;
use crate::publish::client::{Handle, Outgoing};
use crate::publish::text_in::TextRequest;
use crate::publish::topics::Topics;
use crate::queue::{self, QueueStats, Receiver, SyncReceiver, SyncSender};
use crate::text::classifier::TextClassifier;

/// The classifier thread's inputs and outputs.
pub struct TextWorker {
    /// The loaded model.
    pub classifier: TextClassifier,
    /// The bounded queue.
    pub queue: SyncReceiver<TextRequest>,
    /// Where results go.
    pub publisher: Handle,
    /// Topic names.
    pub topics: Topics,
    /// Most texts per batch.
    pub max_batch: usize,
    /// Counters.
    pub stats: Arc<TextStats>,
    /// Shutdown: what is queued is classified, then the stage ends.
    pub stop: CancellationToken,
    /// Inference threads.
    pub threads: usize,
    /// The link to the fallback host, when texts have one.
    pub fallback: Option<TextFallback>,
}

/// How often an idle worker checks for shutdown.
const IDLE_CHECK: Duration = Duration::from_millis(100);

impl TextWorker {
    /// Starts the classifier thread; it ends when every input is gone or at shutdown, once the
    /// queue is empty.
    pub fn spawn(self) -> std::io::Result<std::thread::JoinHandle<()>> {
        std::thread::Builder::new()
            .name("text".into())
            .spawn(move || {
                let threads = self.threads;
                crate::model::threads::with_threads(threads, "text-infer", || self.run())
            })
    }

    fn run(self) {
        let model = self.classifier.manifest().name.clone();
        let topic = self.topics.text_out();
        loop {
            let first = match self.queue.recv_timeout(IDLE_CHECK) {
                Ok(request) => request,
                Err(RecvTimeoutError::Timeout) if !self.stop.is_cancelled() => continue,
                Err(RecvTimeoutError::Timeout) => match self.queue.try_recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match self.queue.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            let texts: Vec<&str> = batch.iter().map(|r| r.text.as_str()).collect();
            let started = Instant::now();
            let results = self.classifier.classify(&texts);
            let took = started.elapsed();
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
            match results {
                Ok(results) => {
                    self.stats.latencies.record(took);
                    for (request, result) in batch.iter().zip(results) {
                        let scores: serde_json::Map<String, serde_json::Value> = result
                            .scores
                            .iter()
                            .map(|(label, score)| (label.clone(), json!(round(*score))))
                            .collect();
                        let mut body = json!({
                            "id": request.id,
                            "label": result.label,
                            "score": round(result.score),
                            "scores": scores,
                            "truncated": result.truncated || request.clipped,
                            "model": model,
                            "source": request.source,
                            "latency_ms": ms(request.received.elapsed()),
                            "inference_ms": ms(took),
                            "batch": batch.len(),
                            "time": crate::source::now(),
                        });
                        let escalate = self.fallback.as_ref().filter(|f| f.wants(result.score));
                        if escalate.is_some() {
                            body["verified"] = json!(false);
                        }
                        self.publisher.blocking_send(Outgoing::Event {
                            id: request.id.clone(),
                            topic: topic.clone(),
                            payload: body.to_string().into_bytes(),
                        });
                        if let Some(fallback) = escalate {
                            fallback.try_send(request.text.clone(), body);
                        }
                        self.stats.classified.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(e) => {
                    let message = format!("{:#}", anyhow::Error::from(e));
                    tracing::error!("text batch of {} failed: {message}", batch.len());
                    for request in &batch {
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        report(
                            &self.publisher,
                            &self.topics,
                            request.source,
                            Some(&request.id),
                            &message,
                        );
                    }
                }
            }
        }
    }
}

/// Starts a thread that moves texts received over MQTT into the bounded queue, waiting while it
/// is full; it ends with the publisher.
pub fn spawn_forward(
    mut from_mqtt: Receiver<TextRequest>,
    queue: SyncSender<TextRequest>,
    stats: Arc<TextStats>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("text-mqtt".into())
        .spawn(move || {
            while let Some(request) = from_mqtt.blocking_recv() {
                stats.received.fetch_add(1, Ordering::Relaxed);
                if !queue.send(request) {
                    break;
                }
            }
        })
}

/// A stream of texts, one per line.
#[derive(Debug, Clone)]
pub enum LineInput {
    /// Standard input.
    Stdin,
    /// A file, read once.
    File(std::path::PathBuf),
}

/// Starts a thread that queues each line of `input` (empty lines are skipped; lines that are not
/// UTF-8, or a file that cannot be opened, are reported on `P/D/error`), waiting while the queue
/// is full.
pub fn spawn_lines(
    input: LineInput,
    queue: SyncSender<TextRequest>,
    publisher: Handle,
    topics: Topics,
    stats: Arc<TextStats>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let source = match input {
        LineInput::Stdin => "stdin",
        LineInput::File(_) => "file",
    };
    std::thread::Builder::new()
        .name(format!("text-{source}"))
        .spawn(move || {
            let reader: Box<dyn BufRead> = match input {
                LineInput::Stdin => Box::new(std::io::stdin().lock()),
                LineInput::File(path) => match std::fs::File::open(&path) {
                    Ok(file) => Box::new(std::io::BufReader::new(file)),
                    Err(e) => {
                        let message = format!("cannot open {}: {e}", path.display());
                        report(&publisher, &topics, source, None, &message);
                        return;
                    }
                },
            };
            for (index, line) in reader.split(b'\n').enumerate() {
                let mut bytes = match line {
                    Ok(bytes) => bytes,
                    Err(e) => {
                        report(
                            &publisher,
                            &topics,
                            source,
                            None,
                            &format!("cannot read: {e}"),
                        );
                        break;
                    }
                };
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
                if bytes.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                match TextRequest::from_line(&bytes, source, index + 1) {
                    Ok(request) => {
                        stats.received.fetch_add(1, Ordering::Relaxed);
                        if !queue.send(request) {
                            break;
                        }
                    }
                    Err(e) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        let message = format!("line {}: {e}", index + 1);
                        report(&publisher, &topics, source, None, &message);
                    }
                }
            }
        })
}

/// Reports a rejected text on `P/D/error` through the outbox, so it is not lost while offline.
fn report(publisher: &Handle, topics: &Topics, source: &str, id: Option<&str>, error: &str) {
    tracing::warn!("text from {source}: {error}");
    let body = json!({ "source": source, "id": id, "error": error, "time": crate::source::now() });
    publisher.blocking_send(Outgoing::Event {
        id: uuid::Uuid::now_v7().to_string(),
        topic: topics.error(),
        payload: body.to_string().into_bytes(),
    });
}

fn round(score: f32) -> f64 {
    (f64::from(score) * 1e4).round() / 1e4
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Starts the text classifier and its inputs; returns the model name, its counters and the
/// classifier thread.
#[allow(clippy::too_many_arguments)]
pub(super) fn start(
    classifier: TextClassifier,
    settings: &TextConfig,
    from_mqtt: Option<Receiver<TextRequest>>,
    text_queue: Arc<QueueStats>,
    publisher: &Handle,
    topics: &Topics,
    stop: CancellationToken,
    threads: usize,
    fallback: Option<TextFallback>,
) -> Result<(String, Arc<TextStats>, std::thread::JoinHandle<()>), AgentError> {
    let name = classifier.manifest().name.clone();
    let stats = Arc::new(TextStats::default());
    let (queue, waiting) = queue::sync_channel(text_queue);
    if let Some(from_mqtt) = from_mqtt {
        spawn_forward(from_mqtt, queue.clone(), stats.clone()).map_err(AgentError::Thread)?;
    }
    let mut inputs = Vec::new();
    if settings.stdin {
        inputs.push(LineInput::Stdin);
    }
    if let Some(path) = &settings.file {
        inputs.push(LineInput::File(path.clone()));
    }
    for input in inputs {
        spawn_lines(
            input,
            queue.clone(),
            publisher.clone(),
            topics.clone(),
            stats.clone(),
        )
        .map_err(AgentError::Thread)?;
    }
    let worker = TextWorker {
        classifier,
        queue: waiting,
        publisher: publisher.clone(),
        topics: topics.clone(),
        max_batch: settings.max_batch,
        stats: stats.clone(),
        stop,
        threads,
        fallback,
    }
    .spawn()
    .map_err(AgentError::Thread)?;
    Ok((name, stats, worker))
}
