//! cargo-fuzz target: drift ignore files (`drift::parse_ignore`); the check is `prov::fuzzing::drift_ignore`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::drift_ignore(data));
