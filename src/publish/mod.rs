//! MQTT publishing: topics, durable outbox, Home Assistant discovery, commands.

pub mod broker;
pub mod client;
pub mod command;
pub mod discovery;
pub mod outbox;
pub mod store;
pub mod topics;
