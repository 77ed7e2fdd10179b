//! The MQTT publisher: one task owns the connection and the event store. Events are stored before
//! they are sent and forgotten only on PUBACK; each connection starts a fresh client session, so
//! whatever was in flight when a connection dropped is simply sent again (consumers de-duplicate
//! by event id). Reconnects back off exponentially with jitter.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, Event, LastWill, MqttOptions, Packet, QoS, TlsConfiguration,
    Transport,
};
use tokio_util::sync::CancellationToken;

use super::command::{self, Command};
use super::discovery::DiscoveryConfig;
use super::store::Store;
use super::text_in::TextRequest;
use super::topics::Topics;
use crate::config::Mqtt;
use crate::queue::{self, Policy, QueueStats};

/// Most events sent and not yet acknowledged at once; below rumqttc's in-flight limit so packet
/// ids never collide.
const WINDOW: usize = 64;
const INFLIGHT: u16 = 100;
/// Broker events (acks, commands, texts) waiting for the publisher; the connection waits when full.
const INBOUND: usize = 1024;

/// Something to publish.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// Stored before sending, QoS 1, re-sent until acknowledged.
    Event {
        /// Unique id, for consumers to de-duplicate.
        id: String,
        /// Topic.
        topic: String,
        /// JSON.
        payload: Vec<u8>,
    },
    /// Retained state (counts, snapshots): the latest per topic is kept while offline and
    /// published on every connect.
    State {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
    /// Best effort (stats, errors): sent if connected, otherwise counted and skipped.
    Notice {
        /// Topic.
        topic: String,
        /// Payload.
        payload: Vec<u8>,
    },
}

/// Errors preparing the connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A TLS file could not be read.
    #[error("cannot read TLS file {path}")]
    TlsFile {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
}

/// Live counters of the publisher, read by stats and `/metrics`.
#[derive(Debug, Default)]
pub struct Status {
    /// Whether a broker session is up.
    pub connected: AtomicBool,
    /// Events waiting in the store.
    pub outbox_depth: AtomicU64,
    /// Most events that ever waited in the store at once.
    pub outbox_high_water: AtomicU64,
    /// Events dropped because the store was full.
    pub outbox_dropped: AtomicU64,
    /// Events the broker acknowledged.
    pub events_acked: AtomicU64,
    /// Store write failures (the event was still sent when connected).
    pub store_errors: AtomicU64,
    /// Connections made.
    pub connections: AtomicU64,
    /// Notices skipped while offline.
    pub notices_skipped: AtomicU64,
}

/// What the publisher needs besides the connection settings.
pub struct Settings {
    /// Broker and session options.
    pub mqtt: Mqtt,
    /// Topic names.
    pub topics: Topics,
    /// Home Assistant discovery configs (empty when disabled).
    pub discovery: Vec<DiscoveryConfig>,
    /// Cameras and their labels, for validating commands.
    pub cameras: Vec<(String, Vec<String>)>,
    /// Where texts from `P/D/text/in` go; `None` leaves the topic unsubscribed. The publisher
    /// never waits on it (the classifier itself waits on the publisher): a text that finds it
    /// full is refused and the sender told so on `P/D/error`.
    pub text_in: Option<queue::Sender<TextRequest>>,
    /// Most messages waiting for the publisher before senders wait.
    pub capacity: usize,
}

/// Handle to a running publisher.
#[derive(Clone)]
pub struct Handle {
    tx: queue::Sender<Outgoing>,
    inbound: Arc<QueueStats>,
    status: Arc<Status>,
}

impl Handle {
    /// Queues a message, waiting while the queue is full (events are never dropped here).
    pub async fn send(&self, message: Outgoing) {
        self.tx.send(message).await;
    }

    /// Queues a message from a non-async thread, waiting while the queue is full.
    pub fn blocking_send(&self, message: Outgoing) {
        self.tx.blocking_send(message);
    }

    /// The counters of the publisher's queues: messages to publish, and what the broker
    /// connection delivers (acks, commands, texts) waiting for the publisher.
    pub fn queues(&self) -> [Arc<QueueStats>; 2] {
        [self.tx.stats().clone(), self.inbound.clone()]
    }

    /// Live counters.
    pub fn status(&self) -> &Arc<Status> {
        &self.status
    }
}

/// Starts the publisher. It ends when every [`Handle`] is dropped and the store is flushed, or
/// when `stop` is cancelled (after a last attempt to say `offline`). Commands go to `commands`.
pub fn spawn(
    settings: Settings,
    store: Store,
    commands: queue::Sender<Command>,
    stop: CancellationToken,
) -> Result<(Handle, tokio::task::JoinHandle<()>), ClientError> {
    let options = options(&settings)?;
    let (tx, rx) = queue::channel(QueueStats::new("publish", settings.capacity, Policy::Wait));
    let inbound = QueueStats::new("mqtt_in", INBOUND, Policy::Wait);
    let status = Arc::new(Status::default());
    let publisher = Publisher {
        options,
        settings,
        store,
        rx,
        inbound: inbound.clone(),
        inbound_open: true,
        commands,
        stop,
        status: status.clone(),
        states: BTreeMap::new(),
        refused: None,
    };
    publisher.refresh_depth();
    let task = tokio::spawn(publisher.run());
    Ok((
        Handle {
            tx,
            inbound,
            status,
        },
        task,
    ))
}

fn options(settings: &Settings) -> Result<MqttOptions, ClientError> {
    let m = &settings.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
    o.set_keep_alive(m.keep_alive)
        // A persistent session: the broker keeps the QoS 1 subscriptions and queues the commands
        // and texts sent while the agent is away, delivering them when it is back.
        .set_clean_session(false)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(
            super::broker::MAX_PAYLOAD + 1024,
            super::broker::MAX_PAYLOAD + 1024,
        )
        .set_last_will(LastWill::new(
            settings.topics.available(),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &m.username {
        o.set_credentials(
            user.clone(),
            m.password
                .as_ref()
                .map(|p| p.expose().to_owned())
                .unwrap_or_default(),
        );
    }
    if let Some(tls) = &m.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|source| ClientError::TlsFile {
                path: path.to_owned(),
                source,
            })
        };
        let client_auth = match &tls.client_cert {
            Some((cert, key)) => Some((read(cert)?, read(key)?)),
            None => None,
        };
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
            ca: read(&tls.ca_file)?,
            alpn: None,
            client_auth,
        }));
    }
    Ok(o)
}

struct Publisher {
    options: MqttOptions,
    settings: Settings,
    store: Store,
    rx: queue::Receiver<Outgoing>,
    inbound: Arc<QueueStats>,
    inbound_open: bool,
    commands: queue::Sender<Command>,
    stop: CancellationToken,
    status: Arc<Status>,
    states: BTreeMap<String, Vec<u8>>,
    /// Why the broker last refused the connection, until it accepts one: said once.
    refused: Option<ConnectReturnCode>,
}

/// How a session ended.
enum End {
    Disconnected,
    Finished,
}

/// Per-connection bookkeeping of what was sent and awaits PUBACK.
#[derive(Default)]
struct Session {
    /// One entry per publish request in send order: the store seq of events, `None` otherwise.
    sent: VecDeque<Option<i64>>,
    /// Packet id → store seq for QoS 1 publishes in flight (`None` for non-events).
    inflight: HashMap<u16, Option<i64>>,
    /// Highest store seq already handed to the client in this session.
    cursor: i64,
    events_in_flight: usize,
}

impl Publisher {
    async fn run(mut self) {
        let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(30));
        let mut retries = 0u64;
        loop {
            let connections = self.status.connections.load(Ordering::Relaxed);
            match self.session().await {
                End::Finished => break,
                End::Disconnected => {
                    self.status.connected.store(false, Ordering::Relaxed);
                    let was_connected =
                        self.status.connections.load(Ordering::Relaxed) > connections;
                    if was_connected {
                        backoff.reset();
                    }
                    let delay = backoff.next();
                    let (host, port) = (&self.settings.mqtt.host, self.settings.mqtt.port);
                    if was_connected || retries == 0 {
                        tracing::info!(
                            "mqtt: not connected to {host}:{port}, retrying with backoff from {:.1} s",
                            delay.as_secs_f64()
                        );
                    } else {
                        tracing::debug!(
                            "mqtt: not connected to {host}:{port}, retrying in {:.1} s",
                            delay.as_secs_f64()
                        );
                    }
                    retries = if was_connected { 1 } else { retries + 1 };
                    let wake = tokio::time::sleep(delay);
                    tokio::pin!(wake);
                    loop {
                        tokio::select! {
                            _ = &mut wake => break,
                            _ = self.stop.cancelled() => return,
                            message = self.rx.recv(), if self.inbound_open => match message {
                                Some(m) => self.accept_offline(m),
                                None => self.inbound_open = false,
                            },
                        }
                    }
                }
            }
        }
    }

    /// Stores or caches a message while no session is up.
    fn accept_offline(&mut self, message: Outgoing) {
        match message {
            Outgoing::Event { id, topic, payload } => {
                self.store_event(&id, &topic, &payload);
            }
            Outgoing::State { topic, payload } => {
                self.states.insert(topic, payload);
            }
            Outgoing::Notice { .. } => {
                self.status.notices_skipped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn store_event(&mut self, id: &str, topic: &str, payload: &[u8]) -> bool {
        let pushed = self.store.push(id, topic, payload, false);
        match pushed {
            Ok(dropped) => {
                if dropped > 0 {
                    tracing::warn!("outbox full: dropped the {dropped} oldest event(s)");
                }
                self.refresh_depth();
                true
            }
            Err(e) => {
                self.status.store_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!("{:#}", anyhow::Error::from(e));
                false
            }
        }
    }

    fn refresh_depth(&self) {
        if let Ok(depth) = self.store.len() {
            self.status
                .outbox_depth
                .store(depth as u64, Ordering::Relaxed);
            self.status
                .outbox_high_water
                .fetch_max(depth as u64, Ordering::Relaxed);
        }
        if let Ok(dropped) = self.store.dropped() {
            self.status.outbox_dropped.store(dropped, Ordering::Relaxed);
        }
    }

    async fn session(&mut self) -> End {
        if self.stop.is_cancelled() || (!self.inbound_open && self.store.is_empty().unwrap_or(true))
        {
            return End::Finished;
        }
        let (client, mut eventloop) = AsyncClient::new(self.options.clone(), 1024);
        let (events_tx, mut events) = queue::channel(self.inbound.clone());
        let poller = tokio::spawn(async move {
            loop {
                let event = eventloop.poll().await;
                let failed = event.is_err();
                if !events_tx.send(event).await || failed {
                    break;
                }
            }
        });
        let end = self.drive(&client, &mut events).await;
        poller.abort();
        end
    }

    async fn drive(
        &mut self,
        client: &AsyncClient,
        events: &mut queue::Receiver<Result<Event, rumqttc::ConnectionError>>,
    ) -> End {
        let mut session = Session::default();
        let mut connected = false;
        loop {
            if connected && !self.inbound_open && self.store.is_empty().unwrap_or(true) {
                self.say_offline(client, events).await;
                return End::Finished;
            }
            tokio::select! {
                event = events.recv() => match event {
                    Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                        connected = true;
                        self.on_connect(client, &mut session).await;
                    }
                    Some(Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid)))) => {
                        let tag = session.sent.pop_front().flatten();
                        if pkid != 0 {
                            session.inflight.insert(pkid, tag);
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                        if let Some(Some(seq)) = session.inflight.remove(&ack.pkid) {
                            session.events_in_flight -= 1;
                            self.acknowledged(seq);
                            self.pump(client, &mut session).await;
                        }
                    }
                    Some(Ok(Event::Incoming(Packet::Publish(p)))) => self.on_message(client, &mut session, &p.topic, &p.payload).await,
                    Some(Ok(_)) => {}
                    Some(Err(e)) => {
                        if connected {
                            tracing::warn!("mqtt: connection lost: {e}");
                        } else if let rumqttc::ConnectionError::ConnectionRefused(code) = e {
                            self.refused_with(code);
                        } else {
                            tracing::debug!("mqtt: connect failed: {e}");
                        }
                        return End::Disconnected;
                    }
                    None => return End::Disconnected,
                },
                message = self.rx.recv(), if self.inbound_open => match message {
                    None => self.inbound_open = false,
                    Some(m) if !connected => self.accept_offline(m),
                    Some(m) => self.publish_now(client, &mut session, m).await,
                },
                _ = self.stop.cancelled() => {
                    if connected {
                        self.say_offline(client, events).await;
                    }
                    return End::Finished;
                }
            }
        }
    }

    fn acknowledged(&mut self, seq: i64) {
        let removed = self.store.remove(seq);
        if let Err(e) = removed {
            self.status.store_errors.fetch_add(1, Ordering::Relaxed);
            tracing::error!("{:#}", anyhow::Error::from(e));
        }
        self.status.events_acked.fetch_add(1, Ordering::Relaxed);
        self.refresh_depth();
    }

    /// Says why the broker refused the connection, once until it accepts one or gives another
    /// reason; the retries go on with backoff.
    fn refused_with(&mut self, code: ConnectReturnCode) {
        if self.refused.replace(code) == Some(code) {
            tracing::debug!("mqtt: the broker refused the connection again: {code:?}");
            return;
        }
        let password = "the password (EDGEMASS_MQTT_PASSWORD or `mqtt.password_file`)";
        let why = match code {
            ConnectReturnCode::BadUserNamePassword => {
                format!("bad user name or password; check `mqtt.username` and {password}")
            }
            ConnectReturnCode::NotAuthorized => format!(
                "not authorized; check `mqtt.username`, {password} and the broker's access rules"
            ),
            ConnectReturnCode::BadClientId => "it refuses the client id; check `device.id`".into(),
            ConnectReturnCode::RefusedProtocolVersion => "it does not take MQTT 3.1.1".into(),
            ConnectReturnCode::ServiceUnavailable => "the service is unavailable".into(),
            ConnectReturnCode::Success => "no reason given".into(),
        };
        tracing::error!(
            "mqtt: {}:{} refused the connection: {why}. Retrying with backoff; this is said once",
            self.settings.mqtt.host,
            self.settings.mqtt.port
        );
    }

    async fn on_connect(&mut self, client: &AsyncClient, session: &mut Session) {
        self.refused = None;
        self.status.connected.store(true, Ordering::Relaxed);
        self.status.connections.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "mqtt: connected to {}:{}",
            self.settings.mqtt.host,
            self.settings.mqtt.port
        );
        let topics = &self.settings.topics;
        let mut filters = vec![topics.set_filter(), topics.ha_status()];
        if self.settings.text_in.is_some() {
            filters.push(topics.text_in());
        }
        for filter in filters {
            if let Err(e) = client.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                tracing::warn!("mqtt: cannot subscribe to {filter}: {e}");
            }
        }
        let available = topics.available();
        self.send(
            client,
            session,
            &available,
            QoS::AtLeastOnce,
            true,
            b"online".to_vec(),
            None,
        )
        .await;
        self.announce(client, session).await;
        let states: Vec<(String, Vec<u8>)> = self
            .states
            .iter()
            .map(|(t, p)| (t.clone(), p.clone()))
            .collect();
        for (topic, payload) in states {
            self.send_state(client, session, &topic, payload).await;
        }
        self.pump(client, session).await;
    }

    async fn announce(&mut self, client: &AsyncClient, session: &mut Session) {
        let configs: Vec<(String, Vec<u8>)> = self
            .settings
            .discovery
            .iter()
            .map(|c| (c.topic.clone(), c.payload.to_string().into_bytes()))
            .collect();
        for (topic, payload) in configs {
            self.send(
                client,
                session,
                &topic,
                QoS::AtLeastOnce,
                true,
                payload,
                None,
            )
            .await;
        }
    }

    /// Sends stored events after the session cursor while the window has room.
    async fn pump(&mut self, client: &AsyncClient, session: &mut Session) {
        while session.events_in_flight < WINDOW {
            let pending = self
                .store
                .pending_after(session.cursor, WINDOW - session.events_in_flight);
            let batch = match pending {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::error!("{:#}", anyhow::Error::from(e));
                    return;
                }
            };
            if batch.is_empty() {
                return;
            }
            for p in batch {
                session.cursor = p.seq;
                session.events_in_flight += 1;
                if self.settings.mqtt.print_events {
                    println!("{}", String::from_utf8_lossy(&p.payload));
                }
                self.send(
                    client,
                    session,
                    &p.topic,
                    QoS::AtLeastOnce,
                    p.retain,
                    p.payload,
                    Some(p.seq),
                )
                .await;
            }
        }
    }

    async fn publish_now(
        &mut self,
        client: &AsyncClient,
        session: &mut Session,
        message: Outgoing,
    ) {
        match message {
            Outgoing::Event { id, topic, payload } => {
                if self.store_event(&id, &topic, &payload) {
                    self.pump(client, session).await;
                } else {
                    self.send(
                        client,
                        session,
                        &topic,
                        QoS::AtLeastOnce,
                        false,
                        payload,
                        None,
                    )
                    .await;
                }
            }
            Outgoing::State { topic, payload } => {
                self.states.insert(topic.clone(), payload.clone());
                self.send_state(client, session, &topic, payload).await;
            }
            Outgoing::Notice { topic, payload } => {
                self.send(
                    client,
                    session,
                    &topic,
                    QoS::AtMostOnce,
                    false,
                    payload,
                    None,
                )
                .await;
            }
        }
    }

    /// Publishes retained state at QoS 0: it is cached and sent again on every connect anyway.
    async fn send_state(
        &self,
        client: &AsyncClient,
        session: &mut Session,
        topic: &str,
        payload: Vec<u8>,
    ) {
        self.send(client, session, topic, QoS::AtMostOnce, true, payload, None)
            .await;
    }

    #[allow(clippy::too_many_arguments)]
    async fn send(
        &self,
        client: &AsyncClient,
        session: &mut Session,
        topic: &str,
        qos: QoS,
        retain: bool,
        payload: Vec<u8>,
        seq: Option<i64>,
    ) {
        session.sent.push_back(seq);
        if let Err(e) = client.publish(topic, qos, retain, payload).await {
            session.sent.pop_back();
            if seq.is_some() {
                session.events_in_flight -= 1;
            }
            tracing::warn!("mqtt: cannot queue publish to {topic}: {e}");
        }
    }

    async fn on_message(
        &mut self,
        client: &AsyncClient,
        session: &mut Session,
        topic: &str,
        payload: &[u8],
    ) {
        let topics = &self.settings.topics;
        if topic == topics.ha_status() {
            if payload == b"online" && !self.settings.discovery.is_empty() {
                tracing::info!("home assistant is online: republishing discovery");
                self.announce(client, session).await;
            }
            return;
        }
        if topic == topics.text_in() {
            let Some(text_in) = &self.settings.text_in else {
                return;
            };
            match TextRequest::from_mqtt(payload) {
                Ok(request) => {
                    if let Err(queue::Full::Full(_)) = text_in.try_send(request) {
                        let error = format!(
                            "text queue full ({} waiting): the text was not classified; send it again later",
                            text_in.stats().capacity
                        );
                        tracing::warn!("rejected text on {topic}: {error}");
                        self.reject(client, session, topic, &error).await;
                    }
                }
                Err(e) => {
                    tracing::warn!("rejected text on {topic}: {e}");
                    self.reject(client, session, topic, &e.to_string()).await;
                }
            }
            return;
        }
        let Some(suffix) = topic.strip_prefix(&topics.set_prefix()) else {
            return;
        };
        let names: Vec<String> = self
            .settings
            .cameras
            .iter()
            .map(|(c, _)| c.clone())
            .collect();
        let cameras = &self.settings.cameras;
        let labels = |camera: &str| -> &[String] {
            cameras
                .iter()
                .find(|(c, _)| c == camera)
                .map_or(&[][..], |(_, l)| l.as_slice())
        };
        match command::parse(topic, suffix, payload, &names, labels) {
            Ok(command) => {
                tracing::info!("command: {command:?}");
                let _ = self.commands.send(command).await;
            }
            Err(e) => {
                tracing::warn!("rejected command: {e}");
                self.reject(client, session, topic, &e.to_string()).await;
            }
        }
    }

    /// Tells `P/D/error` why the message on `topic` was not used.
    async fn reject(
        &mut self,
        client: &AsyncClient,
        session: &mut Session,
        topic: &str,
        error: &str,
    ) {
        let body = serde_json::json!({ "topic": topic, "error": error }).to_string();
        let error_topic = self.settings.topics.error();
        self.send(
            client,
            session,
            &error_topic,
            QoS::AtLeastOnce,
            false,
            body.into_bytes(),
            None,
        )
        .await;
    }

    /// Publishes `offline` and disconnects, waiting briefly for the broker to take it.
    async fn say_offline(
        &mut self,
        client: &AsyncClient,
        events: &mut queue::Receiver<Result<Event, rumqttc::ConnectionError>>,
    ) {
        let _ = client
            .publish(
                self.settings.topics.available(),
                QoS::AtLeastOnce,
                true,
                "offline",
            )
            .await;
        let _ = client.disconnect().await;
        let deadline = tokio::time::sleep(Duration::from_secs(2));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => break,
                event = events.recv() => match event {
                    Some(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Some(Err(_)) | None => break,
                    _ => {}
                },
            }
        }
        self.status.connected.store(false, Ordering::Relaxed);
    }
}

/// Exponential backoff with full jitter.
struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    fn new(base: Duration, max: Duration) -> Backoff {
        Backoff {
            base,
            max,
            attempt: 0,
        }
    }

    fn next(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.max);
        self.attempt += 1;
        ceiling.mul_f64(rand::random_range(0.5..=1.0))
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_with_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert!(delays[0] >= Duration::from_millis(50) && delays[0] <= Duration::from_millis(100));
        assert!(delays[9] >= Duration::from_secs(1) && delays[9] <= Duration::from_secs(2));
    }
}
