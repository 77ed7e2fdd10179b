//! Tests of edgemass-compress, one binary: every pass, recipe and report on real teachers and
//! data from the fetch script. Run `python3 models/fetch.py --tests` once before `cargo test`.

mod augment;
mod bert;
mod cli;
mod common;
mod distill;
mod distill_detect;
mod inspect;
#[path = "../../tests/layer_check.rs"]
mod layer_check;
mod layers;
mod onnx_candle;
mod prune_bert;
mod prune_conv;
mod prune_vocab;
mod quantize;
mod quantize_detect;
mod recipe;
mod recipe_detect;
mod train_text;
