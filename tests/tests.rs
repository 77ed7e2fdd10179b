//! Integration tests of the edgemass agent, on real models from the fetch script and real photos.
//! Run `python3 models/fetch.py` once before `cargo test`.

mod cli;
mod common;
mod detect;
