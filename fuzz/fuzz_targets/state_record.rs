//! cargo-fuzz target: stored state records with format upgrades, PostgreSQL bodies and dumps; the check is `prov::fuzzing::state_record`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::state_record(data));
