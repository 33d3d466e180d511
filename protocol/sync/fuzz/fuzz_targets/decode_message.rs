#![no_main]
//! `cargo fuzz run decode_message` (from protocol/): the wire codec on arbitrary frames.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    konsens_sync::fuzzing::check_decode(data);
});
