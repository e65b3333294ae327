//! Any body through AdmissionReview parsing and both admission decisions: must never
//! panic, whatever the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = kreload::admission::offline::review(body);
});
