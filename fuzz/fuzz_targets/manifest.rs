//! cargo-fuzz target: extension manifests (`extension::parse_manifest`); the check is `prov::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| prov::fuzzing::manifest(data));
