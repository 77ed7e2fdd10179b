//! The body of an infer request without binary data, checked against the fuzz model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = edgemass::fallback::serve::fuzz::infer_json(data);
});
