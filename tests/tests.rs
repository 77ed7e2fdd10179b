//! Integration tests of the edgemass agent, on real models from the fetch script, real photos and
//! a real MQTT broker. Run `python3 models/fetch.py` once before `cargo test`; the agent tests
//! need `mosquitto` and `ffmpeg` on the PATH.

mod agent;
mod cli;
mod common;
mod detect;
mod fallback;
mod fuzz_corpus;
mod host;
mod layer_check;
mod layers;
mod mqtt;
mod packaging;
mod profiles;
mod serve;
mod text;
