//! An infer request with the binary data extension: header length value, newline, body.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgemass::fallback::serve::fuzz::infer_binary(data);
});
