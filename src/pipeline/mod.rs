//! Wiring of sources, inference, tracking and publishing, and graceful shutdown: sources stop,
//! workers drain and end their objects, the publisher flushes the outbox, all under a grace
//! period; what is not acknowledged by then stays in the outbox for the next start.

mod camera;
pub mod fallback;
pub mod motion;
pub mod text;
pub mod worker;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::config::{Config, Mqtt};
use crate::model::ModelError;
use crate::observe::counters::TextStats;
use crate::observe::stats::Registry;
use crate::publish::broker;
use crate::publish::client::{self, Outgoing, Settings};
use crate::publish::command::Command;
use crate::publish::discovery::{self, CameraEntities};
use crate::publish::outbox::Outbox;
use crate::publish::store::{MemoryQueue, Store};
use crate::publish::text_in::TextRequest;
use crate::publish::topics::Topics;
use crate::queue::{self, Policy, QueueStats};
use crate::source;
use crate::text::classifier::TextClassifier;
use crate::vision::detector::{DetectError, Detector};

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

/// Every thread and task of a started agent, and what stops them.
struct Running {
    /// Each camera's frame slot, source thread and inference thread.
    threads: Vec<camera::Threads>,
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
    let http = bind_http(config.http).await?;
    start_broker(&config.mqtt)?;
    let (detectors, classifier) = load_models(config).await?;
    let mut links = fallback::Links::connect(config).await?;
    let mqtt = &config.mqtt;
    let topics = Topics::new(&mqtt.prefix, &config.device.id, &mqtt.discovery_prefix);
    let labels: Vec<(String, Vec<String>)> = config
        .cameras
        .iter()
        .zip(&detectors)
        .map(|(c, d)| (c.name.clone(), d.labels().to_vec()))
        .collect();
    let mut queues = Queues::default();
    let publishing = start_publisher(config, &topics, &labels, &detectors, &mut queues)?;
    let publisher = publishing.publisher;
    let text_queue = config
        .text
        .as_ref()
        .map(|t| queues.counted("text", t.queue, Policy::Wait));
    let sources_stop = CancellationToken::new();
    let (problems_tx, problems_rx) =
        queue::channel(queues.counted("source_problems", PROBLEMS, Policy::Drop));
    let cameras = camera::Cameras::spawn_all(
        &config.cameras,
        detectors,
        &mut links,
        &mut queues,
        &camera::Shared {
            publisher: &publisher,
            topics: &topics,
            stop: &sources_stop,
            problems: &problems_tx,
            snapshots: mqtt.snapshots,
            threads: config.inference.threads,
        },
    )?;
    drop(problems_tx);
    let text_stop = CancellationToken::new();
    let text = match (classifier, &config.text, text_queue) {
        (Some(classifier), Some(settings), Some(text_queue)) => Some(text::start(
            classifier,
            settings,
            publishing.from_mqtt,
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
        cameras: cameras.counters,
        text: text
            .as_ref()
            .map(|(name, stats, _)| (name.clone(), stats.clone())),
        publisher: publisher.status().clone(),
        fallback: links.stats(),
        queues: queues.0,
        outbox_capacity: config.outbox.capacity,
    });
    let tasks_stop = CancellationToken::new();
    let mut tasks = vec![
        report_problems(publisher.clone(), topics.error(), problems_rx),
        camera::follow_commands(cameras.controls, publishing.commands),
        publish_stats(
            publisher.clone(),
            registry.clone(),
            topics.stats(),
            mqtt.stats_interval,
        ),
    ];
    tasks.extend(http.map(|listener| serve_http(listener, &registry, labels, &tasks_stop)));
    Ok(Running {
        threads: cameras.threads,
        text,
        listening: config.text.as_ref().is_some_and(|t| t.mqtt),
        sources_stop,
        text_stop,
        tasks,
        tasks_stop,
        registry,
        publisher,
        publisher_task: publishing.task,
        publisher_stop: publishing.stop,
    })
}

/// The counted queues, in the order the stats message and `/metrics` list them.
#[derive(Default)]
struct Queues(Vec<Arc<QueueStats>>);

impl Queues {
    /// Counters for a new queue, listed from now on.
    fn counted(&mut self, name: &str, capacity: usize, policy: Policy) -> Arc<QueueStats> {
        let stats = QueueStats::new(name, capacity, policy);
        self.0.push(stats.clone());
        stats
    }
}

/// The running publisher and the queues it fills for the rest of the agent.
struct Publishing {
    publisher: client::Handle,
    task: tokio::task::JoinHandle<()>,
    /// Cancelled when the outbox cannot be flushed within the grace period.
    stop: CancellationToken,
    /// Validated commands for the cameras.
    commands: queue::Receiver<Command>,
    /// Texts from MQTT, when `[text]` listens there.
    from_mqtt: Option<queue::Receiver<TextRequest>>,
}

/// Opens the outbox and starts the MQTT publisher with its discovery messages and the queues of
/// what it receives (commands, texts); its own queues are listed first.
fn start_publisher(
    config: &Config,
    topics: &Topics,
    labels: &[(String, Vec<String>)],
    detectors: &[Detector],
    queues: &mut Queues,
) -> Result<Publishing, AgentError> {
    let (commands_tx, commands) =
        queue::channel::<Command>(queues.counted("commands", COMMANDS, Policy::Wait));
    let (text_in, from_mqtt) = match &config.text {
        Some(t) if t.mqtt => {
            let (tx, rx) = queue::channel(queues.counted("text_in", TEXT_IN, Policy::Refuse));
            (Some(tx), Some(rx))
        }
        _ => (None, None),
    };
    let settings = Settings {
        mqtt: config.mqtt.clone(),
        topics: topics.clone(),
        discovery: discovery_configs(config, topics, labels, detectors),
        cameras: labels.to_vec(),
        text_in,
        capacity: PUBLISH,
    };
    let stop = CancellationToken::new();
    let (publisher, task) = client::spawn(settings, open_store(config), commands_tx, stop.clone())?;
    queues.0.splice(0..0, publisher.queues());
    Ok(Publishing {
        publisher,
        task,
        stop,
        commands,
        from_mqtt,
    })
}

/// Binds the HTTP listener before anything else starts, so a port in use stops the agent at
/// once and names the key.
async fn bind_http(
    addr: Option<SocketAddr>,
) -> Result<Option<tokio::net::TcpListener>, AgentError> {
    let Some(addr) = addr else { return Ok(None) };
    tokio::net::TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| AgentError::Http { addr, source })
}

/// Starts the in-process broker when `mqtt.embedded_broker` is on.
fn start_broker(mqtt: &Mqtt) -> Result<(), AgentError> {
    if !mqtt.embedded_broker {
        return Ok(());
    }
    let ip = if mqtt.host == "localhost" {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        mqtt.host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    };
    broker::start(SocketAddr::new(ip, mqtt.port))?;
    tracing::info!("embedded MQTT broker listening on {ip}:{}", mqtt.port);
    Ok(())
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

/// Serves `/healthz`, `/metrics` and the status page on `listener` until `stop`.
fn serve_http(
    listener: tokio::net::TcpListener,
    registry: &Arc<Registry>,
    labels: Vec<(String, Vec<String>)>,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let (registry, labels, stop) = (registry.clone(), Arc::new(labels), stop.clone());
    tokio::spawn(async move {
        if let Err(e) = crate::observe::http::serve(listener, registry, labels, stop).await {
            tracing::error!("http: stopped serving: {e}");
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
