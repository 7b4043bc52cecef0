//! A shell word, any bytes (the first picks the lexer's options): expanded without a panic or a
//! hang, the three entry points agreeing (the body is `strata_frontend::fuzzing::expand`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| strata_frontend::fuzzing::expand(data));
