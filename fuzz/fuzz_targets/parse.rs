//! A Dockerfile, any bytes: parsed, dumped, typed, checked and translated without a panic or a
//! hang (the body is `strata_frontend::fuzzing::dockerfile`, also run by CI's stable tests).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strata_frontend::fuzzing::dockerfile(data));
