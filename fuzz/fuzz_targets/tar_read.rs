//! Fuzz target: `strata_store::fuzzing::tar_read` on arbitrary bytes (see that function's doc).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    strata_store::fuzzing::tar_read(data);
});
