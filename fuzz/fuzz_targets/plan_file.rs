//! cargo-fuzz target: saved plan files (`plan::file::from_bytes`); the check is `prov::fuzzing::plan_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::plan_file(data));
