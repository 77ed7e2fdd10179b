//! The embedded MQTT broker (rumqttd) for installs with nothing else: loopback only, MQTT 3.1.1.

use std::net::SocketAddr;

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The address is not a loopback address.
    #[error("the embedded broker listens on loopback only, not {addr}")]
    NotLoopback {
        /// The refused address.
        addr: SocketAddr,
    },
    /// The port is taken or cannot be bound.
    #[error(
        "cannot listen on {addr} for the embedded broker (config keys `mqtt.port`, `mqtt.host`; or set `mqtt.embedded_broker = false` to use a broker already there)"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The bind failure.
        source: std::io::Error,
    },
    /// This build has no broker in it.
    #[error(
        "this edgemass was built without the `embedded-broker` feature: run a broker such as mosquitto and point mqtt.host at it"
    )]
    NotBuilt,
    /// rumqttd refused its configuration.
    #[error("embedded broker configuration rejected: {reason}")]
    Config {
        /// rumqttd's message.
        reason: String,
    },
}

/// Largest message the embedded broker accepts: snapshots are JPEGs of whole frames.
pub const MAX_PAYLOAD: usize = 8 * 1024 * 1024;

/// Without the `embedded-broker` feature there is no broker to start (the config check refuses
/// `mqtt.embedded_broker = true` first).
#[cfg(not(feature = "embedded-broker"))]
pub fn start(_addr: SocketAddr) -> Result<(), BrokerError> {
    Err(BrokerError::NotBuilt)
}

/// Starts rumqttd on `addr` in a background thread; it lives until the process exits.
#[cfg(feature = "embedded-broker")]
pub fn start(addr: SocketAddr) -> Result<(), BrokerError> {
    if !addr.ip().is_loopback() {
        return Err(BrokerError::NotLoopback { addr });
    }
    // rumqttd reports a taken port only in its own thread; probe first so the caller gets it.
    drop(std::net::TcpListener::bind(addr).map_err(|source| BrokerError::Bind { addr, source })?);
    let text = format!(
        r#"
        id = 0
        [router]
        id = 0
        max_connections = 1000
        max_outgoing_packet_count = 200
        max_segment_size = 104857600
        max_segment_count = 10
        [v4.1]
        name = "v4-1"
        listen = "{addr}"
        next_connection_delay_ms = 1
        [v4.1.connections]
        connection_timeout_ms = 60000
        max_payload_size = {MAX_PAYLOAD}
        max_inflight_count = 500
        dynamic_filters = true
        "#
    );
    let config: rumqttd::Config = toml::from_str(&text).map_err(|e| BrokerError::Config {
        reason: e.message().to_owned(),
    })?;
    let mut broker = rumqttd::Broker::new(config);
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!("embedded broker stopped: {e}");
            }
        })
        .map_err(|source| BrokerError::Bind { addr, source })?;
    Ok(())
}
