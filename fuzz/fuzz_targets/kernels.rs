//! Differential fuzzing of every kernel on every table this CPU has against the scalar
//! reference, hostile shapes included; the check is `kernels/tests/differential/`, shared with
//! the stable replay test `kernels/tests/fuzz_replay.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../kernels/tests/differential/mod.rs"]
mod differential;

fuzz_target!(|data: &[u8]| {
    differential::run(data);
});
