//! MQTT publishing: topics, durable outbox, Home Assistant discovery, commands, text input.

pub mod broker;
pub mod client;
pub mod command;
pub mod discovery;
pub mod outbox;
pub mod store;
pub mod text_in;
pub mod topics;
