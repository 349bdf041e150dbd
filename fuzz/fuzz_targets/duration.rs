//! cargo-fuzz target: duration flags (`cli::parse_duration`); the check is `prov::fuzzing::duration`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::duration(data));
