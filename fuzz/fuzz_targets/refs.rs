//! cargo-fuzz target: `${…}` references and resource addresses; the check is `prov::fuzzing::refs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::refs(data));
