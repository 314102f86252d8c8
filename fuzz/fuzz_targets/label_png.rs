#![no_main]
// See dinoseg_fuzz::harness::label_png for what this target feeds and FUZZING.md for how to run it.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = dinoseg_fuzz::harness::label_png(data);
});
