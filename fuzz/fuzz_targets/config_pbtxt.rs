//! A model directory's `config.pbtxt`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgemass::fallback::serve::fuzz::config_pbtxt(data);
});
