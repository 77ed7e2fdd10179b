//! Wiring of sources, inference, tracking and publishing, and graceful shutdown: sources stop,
//! workers drain and end their objects, the publisher flushes the outbox, all under a grace
//! period; what is not acknowledged by then stays in the outbox for the next start.

pub mod fallback;
pub mod motion;
pub mod text;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::TrackerConfig;
use crate::config::{Config, TextConfig};
use crate::model::ModelError;
use crate::observe::counters::{TextStats, WorkerStats};
use crate::observe::stats::{CameraCounters, Registry};
use crate::publish::broker;
use crate::publish::client::{self, Outgoing, Settings};
use crate::publish::command::Command;
use crate::publish::discovery::{self, CameraEntities};
use crate::publish::outbox::Outbox;
use crate::publish::store::{MemoryQueue, Store};
use crate::publish::text_in::TextRequest;
use crate::publish::topics::Topics;
use crate::queue::{self, Policy, QueueStats};
use crate::source::slot::Slot;
use crate::source::{self, SourceStats};
use crate::text::classifier::TextClassifier;
use crate::vision::detector::{DetectError, Detector};
use text::TextWorker;
use worker::{Control, Worker};

/// Messages waiting for the publisher before their senders wait.
const PUBLISH: usize = 256;
/// Validated commands waiting for the cameras; the publisher waits when full.
const COMMANDS: usize = 64;
/// Texts from MQTT waiting for the text queue; more are refused and the sender told on
/// `P/D/error` (the publisher that receives them must never wait on the classifier).
const TEXT_IN: usize = 1024;
/// Source problem reports waiting to be published; more are dropped (and still logged).
const PROBLEMS: usize = 64;

/// Errors that stop the agent from starting.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A camera's model could not be loaded.
    #[error("camera `{camera}`: cannot load model {path}")]
    Model {
        /// Camera name.
        camera: String,
        /// Manifest path.
        path: std::path::PathBuf,
        /// Why.
        source: Box<DetectError>,
    },
    /// The text model could not be loaded.
    #[error("text: cannot load model {path}")]
    TextModel {
        /// Manifest path.
        path: std::path::PathBuf,
        /// Why.
        source: Box<crate::text::TextError>,
    },
    /// The HTTP endpoint's address cannot be bound.
    #[error("cannot listen on {addr} for /metrics and /healthz (config key `http.listen`)")]
    Http {
        /// The configured address.
        addr: SocketAddr,
        /// Why, e.g. the port is in use.
        source: std::io::Error,
    },
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] broker::BrokerError),
    /// The MQTT client could not be prepared.
    #[error(transparent)]
    Client(#[from] client::ClientError),
    /// The fallback host cannot be used.
    #[error(transparent)]
    Fallback(#[from] crate::fallback::FallbackError),
    /// A thread could not be started.
    #[error("cannot start thread")]
    Thread(#[source] std::io::Error),
}

/// What a run did, reported when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Events the workers produced.
    pub events: u64,
    /// Events the broker acknowledged in this run.
    pub acked: u64,
    /// Events still in the outbox.
    pub pending: u64,
}

/// Runs the agent until `shutdown` is cancelled or every source has ended; then drains within
/// `grace`.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    grace: Duration,
) -> Result<Summary, AgentError> {
    let running = start(&config).await?;
    running.wait(&shutdown).await;
    Ok(running.drain(grace).await)
}

/// A camera's frame slot, source thread and inference thread.
type CameraThreads = (
    Arc<Slot<crate::source::Frame>>,
    std::thread::JoinHandle<()>,
    std::thread::JoinHandle<()>,
);

/// Every thread and task of a started agent, and what stops them.
struct Running {
    /// Each camera's frame slot, source thread and inference thread.
    threads: Vec<CameraThreads>,
    /// The text model's name, counters and classifier thread.
    text: Option<(String, Arc<TextStats>, std::thread::JoinHandle<()>)>,
    /// Whether texts come from MQTT, so the agent runs on after the cameras end.
    listening: bool,
    sources_stop: CancellationToken,
    text_stop: CancellationToken,
    /// Problems, commands, stats and HTTP.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    tasks_stop: CancellationToken,
    registry: Arc<Registry>,
    publisher: client::Handle,
    publisher_task: tokio::task::JoinHandle<()>,
    publisher_stop: CancellationToken,
}

/// Loads the models, opens the outbox, connects the publisher and starts every source, worker,
/// the text stage and the side tasks.
async fn start(config: &Config) -> Result<Running, AgentError> {
    let started = Instant::now();
    let http = match config.http {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AgentError::Http { addr, source })?,
        ),
        None => None,
    };
    let mqtt = config.mqtt.clone();
    if mqtt.embedded_broker {
        let ip = if mqtt.host == "localhost" {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            mqtt.host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        };
        broker::start(SocketAddr::new(ip, mqtt.port))?;
        tracing::info!("embedded MQTT broker listening on {ip}:{}", mqtt.port);
    }
    let (detectors, classifier) = load_models(config).await?;
    let mut links = fallback::Links::connect(config).await?;
    let topics = Topics::new(&mqtt.prefix, &config.device.id, &mqtt.discovery_prefix);
    let labels: Vec<(String, Vec<String>)> = config
        .cameras
        .iter()
        .zip(&detectors)
        .map(|(c, d)| (c.name.clone(), d.labels().to_vec()))
        .collect();
    let store = open_store(config);
    let discovery = discovery_configs(config, &topics, &labels, &detectors);
    let mut queues = Vec::new();
    let mut counted = |name: &str, capacity: usize, policy: Policy| {
        let stats = QueueStats::new(name, capacity, policy);
        queues.push(stats.clone());
        stats
    };
    let (commands_tx, mut commands_rx) =
        queue::channel::<Command>(counted("commands", COMMANDS, Policy::Wait));
    let (text_in, from_mqtt) = match &config.text {
        Some(t) if t.mqtt => {
            let (tx, rx) = queue::channel(counted("text_in", TEXT_IN, Policy::Refuse));
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let text_queue = config
        .text
        .as_ref()
        .map(|t| counted("text", t.queue, Policy::Wait));
    let problems = counted("source_problems", PROBLEMS, Policy::Drop);
    let publisher_stop = CancellationToken::new();
    let settings = Settings {
        mqtt: mqtt.clone(),
        topics: topics.clone(),
        discovery,
        cameras: labels.clone(),
        text_in,
        capacity: PUBLISH,
    };
    let (publisher, publisher_task) =
        client::spawn(settings, store, commands_tx, publisher_stop.clone())?;
    queues.splice(0..0, publisher.queues());

    let sources_stop = CancellationToken::new();
    let (problems_tx, problems_rx) = queue::channel(problems);
    let mut counters = Vec::new();
    let mut controls = Vec::new();
    let mut threads = Vec::new();
    for (index, (camera, detector)) in config.cameras.iter().zip(detectors).enumerate() {
        let slot = Arc::new(Slot::default());
        let source_stats = Arc::new(SourceStats::default());
        let worker_stats = Arc::new(WorkerStats::default());
        let control = Arc::new(Control {
            enabled: AtomicBool::new(camera.enabled),
            tracker: Mutex::new(None),
        });
        counters.push(CameraCounters {
            name: camera.name.clone(),
            model: detector.model().manifest().name.clone(),
            choice: detector.model().choice().clone(),
            source: source_stats.clone(),
            worker: worker_stats.clone(),
            slot: slot.clone(),
        });
        controls.push((camera.name.clone(), control.clone(), camera.tracker.clone()));
        let ctx = source::Context {
            slot: slot.clone(),
            stop: sources_stop.clone(),
            stats: source_stats,
            problems: problems_tx.clone(),
        };
        let source_thread = source::spawn(camera, ctx).map_err(AgentError::Thread)?;
        let fallback = links.camera(index);
        queues.extend(fallback.as_ref().map(|f| f.answers_queue()));
        let worker = Worker {
            camera: camera.clone(),
            detector,
            slot: slot.clone(),
            publisher: publisher.clone(),
            topics: topics.clone(),
            control,
            stats: worker_stats,
            snapshots: mqtt.snapshots,
            threads: config.inference.threads,
            fallback,
        };
        threads.push((
            slot,
            source_thread,
            worker.spawn().map_err(AgentError::Thread)?,
        ));
    }
    drop(problems_tx);
    let text_stop = CancellationToken::new();
    let text = match (classifier, &config.text, text_queue) {
        (Some(classifier), Some(settings), Some(text_queue)) => Some(start_text(
            classifier,
            settings,
            from_mqtt,
            text_queue,
            &publisher,
            &topics,
            text_stop.clone(),
            config.inference.threads,
            links.text(&publisher, &topics),
        )?),
        _ => None,
    };
    let registry = Arc::new(Registry {
        started,
        cameras: counters,
        text: text
            .as_ref()
            .map(|(name, stats, _)| (name.clone(), stats.clone())),
        publisher: publisher.status().clone(),
        fallback: links.stats(),
        queues,
        outbox_capacity: config.outbox.capacity,
    });

    let tasks_stop = CancellationToken::new();
    let mut tasks = Vec::new();
    tasks.push(report_problems(
        publisher.clone(),
        topics.error(),
        problems_rx,
    ));
    tasks.push(tokio::spawn(async move {
        let mut controls = controls;
        while let Some(command) = commands_rx.recv().await {
            apply(&mut controls, command);
        }
    }));
    tasks.push(publish_stats(
        publisher.clone(),
        registry.clone(),
        topics.stats(),
        mqtt.stats_interval,
    ));
    if let Some(listener) = http {
        let registry = registry.clone();
        let labels = Arc::new(labels.clone());
        let stop = tasks_stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = crate::observe::http::serve(listener, registry, labels, stop).await {
                tracing::error!("http: stopped serving: {e}");
            }
        }));
    }

    Ok(Running {
        threads,
        text,
        listening: config.text.as_ref().is_some_and(|t| t.mqtt),
        sources_stop,
        text_stop,
        tasks,
        tasks_stop,
        registry,
        publisher,
        publisher_task,
        publisher_stop,
    })
}

impl Running {
    /// Waits until `shutdown` is cancelled or every source (and the text stage) has ended.
    async fn wait(&self, shutdown: &CancellationToken) {
        let all_ended = async {
            let mut said = false;
            loop {
                let text_done = self.text.as_ref().is_none_or(|(_, _, t)| t.is_finished());
                let cameras_done = self.threads.iter().all(|(_, _, w)| w.is_finished());
                if cameras_done && text_done {
                    break;
                }
                if cameras_done && self.listening && !self.threads.is_empty() && !said {
                    tracing::info!(
                        "every camera has ended; still classifying texts from MQTT until stopped"
                    );
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => tracing::info!("shutting down"),
            _ = all_ended => tracing::info!("all sources ended"),
        }
    }

    /// Stops the sources, lets the workers and the text stage finish, then flushes the outbox,
    /// all within `grace`; what is still unsent stays in the outbox for the next start.
    async fn drain(mut self, grace: Duration) -> Summary {
        let deadline = Instant::now() + grace;
        self.sources_stop.cancel();
        for (slot, _, _) in &self.threads {
            slot.close();
        }
        self.text_stop.cancel();
        let (threads, text) = (self.threads, self.text);
        let joined = tokio::task::spawn_blocking(move || {
            for (_, source, worker) in threads {
                let _ = source.join();
                let _ = worker.join();
            }
            if let Some((_, _, worker)) = text {
                let _ = worker.join();
            }
        });
        if tokio::time::timeout_at(deadline.into(), joined)
            .await
            .is_err()
        {
            tracing::warn!("inference did not finish within the grace period");
        }
        self.tasks_stop.cancel();
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
        let events: u64 = self
            .registry
            .cameras
            .iter()
            .map(|c| c.worker.events.load(Ordering::Relaxed))
            .sum();
        let status = self.publisher.status().clone();
        drop(self.publisher);
        if tokio::time::timeout_at(deadline.into(), &mut self.publisher_task)
            .await
            .is_err()
        {
            tracing::warn!(
                "outbox not flushed within the grace period; the rest is sent at the next start"
            );
            self.publisher_stop.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(3), self.publisher_task).await;
        }
        Summary {
            events,
            acked: status.events_acked.load(Ordering::Relaxed),
            pending: status.outbox_depth.load(Ordering::Relaxed),
        }
    }
}

/// Every camera's detector and the text classifier, loaded off the async threads; a model that
/// cannot load stops the agent, naming its camera and file.
async fn load_models(
    config: &Config,
) -> Result<(Vec<Detector>, Option<TextClassifier>), AgentError> {
    let cameras = config.cameras.clone();
    let inference = config.inference.clone();
    let detectors = tokio::task::spawn_blocking(move || {
        cameras
            .iter()
            .map(|c| {
                c.manifest()
                    .map_err(|e| DetectError::from(ModelError::from(e)))
                    .and_then(|m| Detector::load(m, &c.load_options(&inference)))
                    .inspect(|d| {
                        let m = d.model().manifest();
                        tracing::info!(
                            camera = %c.name,
                            "model {} ({}x{}) on {}",
                            m.name,
                            m.input.width,
                            m.input.height,
                            d.model().choice()
                        );
                    })
                    .map_err(|source| AgentError::Model {
                        camera: c.name.clone(),
                        path: c.model.clone(),
                        source: Box::new(source),
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??;
    let classifier = match config.text.clone() {
        Some(text) => Some(
            tokio::task::spawn_blocking(move || {
                TextClassifier::from_manifest_path(&text.model).map_err(|source| {
                    AgentError::TextModel {
                        path: text.model.clone(),
                        source: Box::new(source),
                    }
                })
            })
            .await
            .map_err(|e| AgentError::Thread(std::io::Error::other(e)))??,
        ),
        None => None,
    };
    Ok((detectors, classifier))
}

/// The outbox, or — when its file cannot be opened — a bounded queue in memory, said once.
fn open_store(config: &Config) -> Store {
    match Outbox::open(&config.outbox.path, config.outbox.capacity) {
        Ok(outbox) => Store::Disk(outbox),
        Err(e) => {
            tracing::error!(
                "{:#}; events are kept in memory only until it is fixed",
                anyhow::Error::from(e)
            );
            Store::Memory(MemoryQueue::new(config.outbox.capacity))
        }
    }
}

/// The Home Assistant discovery messages, when `mqtt.discovery` is on: per camera, an entity per
/// label, or per label group for a model that has them (80 COCO classes).
fn discovery_configs(
    config: &Config,
    topics: &Topics,
    labels: &[(String, Vec<String>)],
    detectors: &[Detector],
) -> Vec<discovery::DiscoveryConfig> {
    if !config.mqtt.discovery {
        return Vec::new();
    }
    let entities: Vec<CameraEntities> = labels
        .iter()
        .zip(detectors)
        .map(|((c, l), d)| {
            let groups = &d.model().manifest().groups;
            CameraEntities {
                camera: c.clone(),
                labels: if groups.is_empty() {
                    l.clone()
                } else {
                    groups.names()
                },
            }
        })
        .collect();
    discovery::configs(topics, &config.device.id, &config.device.name, &entities)
}

/// Publishes each source problem on `topic` (`P/D/error`) as JSON.
fn report_problems(
    publisher: client::Handle,
    topic: String,
    mut problems: queue::Receiver<source::SourceProblem>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Some(p) = problems.recv().await {
            let body = serde_json::json!({ "camera": p.camera, "error": p.message, "time": source::now() });
            publisher
                .send(Outgoing::Notice {
                    topic: topic.clone(),
                    payload: body.to_string().into_bytes(),
                })
                .await;
        }
    })
}

/// Publishes the stats message on `topic` every `every`. Stats are best effort (skipped while
/// offline): the first goes out as soon as the broker session is up, then one per interval.
fn publish_stats(
    publisher: client::Handle,
    registry: Arc<Registry>,
    topic: String,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rates = registry.rates();
        while !publisher.status().connected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            let body = registry.to_json(&mut rates).to_string().into_bytes();
            publisher
                .send(Outgoing::Notice {
                    topic: topic.clone(),
                    payload: body,
                })
                .await;
        }
    })
}

/// Starts the text classifier and its inputs; returns the model name, its counters and the
/// classifier thread.
#[allow(clippy::too_many_arguments)]
fn start_text(
    classifier: TextClassifier,
    settings: &TextConfig,
    from_mqtt: Option<queue::Receiver<TextRequest>>,
    text_queue: Arc<QueueStats>,
    publisher: &client::Handle,
    topics: &Topics,
    stop: CancellationToken,
    threads: usize,
    fallback: Option<crate::fallback::text::TextFallback>,
) -> Result<(String, Arc<TextStats>, std::thread::JoinHandle<()>), AgentError> {
    let name = classifier.manifest().name.clone();
    let stats = Arc::new(TextStats::default());
    let (queue, waiting) = queue::sync_channel(text_queue);
    if let Some(from_mqtt) = from_mqtt {
        text::spawn_forward(from_mqtt, queue.clone(), stats.clone()).map_err(AgentError::Thread)?;
    }
    let mut inputs = Vec::new();
    if settings.stdin {
        inputs.push(text::LineInput::Stdin);
    }
    if let Some(path) = &settings.file {
        inputs.push(text::LineInput::File(path.clone()));
    }
    for input in inputs {
        text::spawn_lines(
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

/// Applies a validated command to its camera.
fn apply(controls: &mut [(String, Arc<Control>, TrackerConfig)], command: Command) {
    match command {
        Command::Enable { camera, enabled } => {
            if let Some((_, control, _)) = controls.iter().find(|(c, _, _)| *c == camera) {
                control.enabled.store(enabled, Ordering::Relaxed);
            }
        }
        Command::Thresholds {
            camera,
            label,
            min_score,
            threshold,
        } => {
            let Some((_, control, tracker)) = controls.iter_mut().find(|(c, _, _)| *c == camera)
            else {
                return;
            };
            let mut targets: Vec<&mut crate::config::LabelThresholds> = match &label {
                Some(label) => {
                    let current = tracker.thresholds(label);
                    vec![tracker.labels.entry(label.clone()).or_insert(current)]
                }
                None => std::iter::once(&mut tracker.default)
                    .chain(tracker.labels.values_mut())
                    .collect(),
            };
            for t in targets.iter_mut() {
                if let Some(v) = min_score {
                    t.min_score = v;
                }
                if let Some(v) = threshold {
                    t.threshold = v;
                }
                t.min_score = t.min_score.min(t.threshold);
            }
            if let Ok(mut pending) = control.tracker.lock() {
                *pending = Some(tracker.clone());
            }
        }
    }
}
