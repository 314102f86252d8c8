//! Seeded random mutation tests of every parser that reads outside data, inside `cargo test` (bounded: a few
//! seconds in release).
//!
//! The inputs are the fuzz seed corpus (fuzz/corpus/<target>/, written by tools/fuzz_seeds.py) and the mutations
//! are deterministic (a splitmix64 stream seeded by target and seed file): bit flips, truncations, inserted and
//! deleted bytes, interesting byte values, and 32-bit fields that look like lengths or counts overwritten with 0,
//! 0xFFFFFFFF and friends. Every mutant goes through the same entry points as the libFuzzer targets (the fuzz
//! crate's harness, compiled in here) and must return, without a panic, within [`CALL_LIMIT`]. Every crash input
//! the fuzzer found (fuzz/regressions/<target>/) is replayed the same way, except those listed in
//! fuzz/regressions/OPEN (found, not fixed yet: replayed by the ignored test `open_regressions_replay`).
//!
//! A failing mutant is saved under the test's temporary directory (`mutation-failures/`) and named in the
//! failure message, so it can be replayed with `target/fuzz/build/.../<target> FILE` or added to the regressions.

#[allow(dead_code)]
#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Longest one call may take (a hostile input must fail fast, not hang).
const CALL_LIMIT: Duration = Duration::from_secs(2);
/// Most the process's peak resident memory may grow during one call (inputs here are a few KiB).
const MEMORY_LIMIT_MIB: u64 = 256;
/// Mutants per seed file (about 15,000 inputs in all, 3 s on 2 cores).
const MUTANTS: usize = 200;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of a folder, sorted by name (none when it does not exist).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .filter_map(|e| Some((e.file_name().to_str()?.to_string(), std::fs::read(e.path()).ok()?)))
        .collect();
    out.sort();
    out
}

fn target(name: &str) -> harness::Target {
    match harness::TARGETS.iter().find(|(n, _)| *n == name) {
        Some((_, t)) => *t,
        None => panic!("no fuzz target `{name}` in fuzz/src/harness.rs"),
    }
}

/// splitmix64: a tiny, good-enough deterministic stream.
struct Rng(u64);

impl Rng {
    fn new(label: &str, index: usize) -> Self {
        // FNV-1a of the label, mixed with the index.
        let h = label.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        Self(h ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Offsets of 4-aligned little-endian u32 values that could be a length or count of this input (1..=len).
fn length_fields(v: &[u8]) -> Vec<usize> {
    (0..v.len().saturating_sub(3))
        .step_by(4)
        .filter(|&i| {
            let n = u32::from_le_bytes([v[i], v[i + 1], v[i + 2], v[i + 3]]) as usize;
            n >= 1 && n <= v.len()
        })
        .collect()
}

/// One to three random edits of `seed`.
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    const INTERESTING: [u8; 10] = [0, 1, 0x7f, 0x80, 0xff, b'"', b'{', b'[', b'\n', b':'];
    const LENGTHS: [u32; 5] = [0, 0xffff_ffff, 0x7fff_ffff, 0x8000_0000, 0x0100_0000];
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(3) {
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => v.truncate(rng.below(v.len() + 1)),
            2 => {
                let at = rng.below(v.len() + 1);
                let bytes: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 => {
                let fields = length_fields(&v);
                let at = if fields.is_empty() {
                    rng.below(v.len().saturating_sub(3))
                } else {
                    fields[rng.below(fields.len())]
                };
                if at + 4 <= v.len() {
                    let old = u32::from_le_bytes([v[at], v[at + 1], v[at + 2], v[at + 3]]);
                    let new = match rng.below(LENGTHS.len() + 2) {
                        k if k < LENGTHS.len() => LENGTHS[k],
                        k if k == LENGTHS.len() => old.wrapping_add(1),
                        _ => old.wrapping_sub(1),
                    };
                    v[at..at + 4].copy_from_slice(&new.to_le_bytes());
                }
            }
            4 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            5 if !v.is_empty() => {
                let at = rng.below(v.len());
                let end = (at + 1 + rng.below(32)).min(v.len());
                v.drain(at..end);
            }
            6 if !v.is_empty() => {
                let at = rng.below(v.len());
                let end = (at + 1 + rng.below(64)).min(v.len());
                let copy = v[at..end].to_vec();
                let to = rng.below(v.len() + 1);
                v.splice(to..to, copy);
            }
            _ => {}
        }
    }
    v
}

/// The process's peak resident memory in MiB (`VmHWM`; 0 where /proc is not there).
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}

/// Runs one input; a panic, a slow call or one during which the process's peak memory grew by more than
/// [`MEMORY_LIMIT_MIB`] is recorded (with the input saved) in `failures`.
fn check(target: harness::Target, input: &[u8], label: &str, failures: &mut Vec<String>) {
    // Resets the high-water mark to the current resident size (Linux `clear_refs` 5), so each call is measured
    // from where the process is now, not from the highest an earlier call reached.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let peak = peak_rss_mib();
    let started = Instant::now();
    let outcome = catch_unwind(|| target(input));
    let took = started.elapsed();
    let grew = peak_rss_mib().saturating_sub(peak);
    let mut problems = Vec::new();
    if outcome.is_err() {
        problems.push("panicked".to_string());
    }
    if took > CALL_LIMIT {
        problems.push(format!("took {took:.2?} (limit {CALL_LIMIT:?})"));
    }
    if grew > MEMORY_LIMIT_MIB {
        problems
            .push(format!("the process's peak memory grew by {grew} MiB during the call (limit {MEMORY_LIMIT_MIB})"));
    }
    if problems.is_empty() {
        return;
    }
    let problem = problems.join(", ");
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("mutation-failures");
    let file = dir.join(label.replace(['/', ' '], "_"));
    let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&file, input));
    let at = if saved.is_ok() { file.display().to_string() } else { "not saved".to_string() };
    failures.push(format!("{label}: {problem} (input: {at})"));
}

/// Regression inputs found but not fixed yet: `<target>/<file>` per line of fuzz/regressions/OPEN (`#` comments).
fn open_regressions() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("regressions").join("OPEN")).unwrap_or_default();
    text.lines().map(|l| l.split('#').next().unwrap_or("").trim().to_string()).filter(|l| !l.is_empty()).collect()
}

/// `mutants` mutants of every seed of `name`, then its fixed regressions.
fn mutate_target(name: &str, mutants: usize) {
    let t = target(name);
    let seeds = files(&root().join("corpus").join(name));
    assert!(!seeds.is_empty(), "no seeds in fuzz/corpus/{name} (run tools/fuzz_seeds.py)");
    let open = open_regressions();
    // A mutant identical to an open regression is a known failure: it fails `open_regressions_replay` instead.
    let known: BTreeSet<Vec<u8>> = open
        .iter()
        .filter(|e| e.starts_with(&format!("{name}/")))
        .filter_map(|e| std::fs::read(root().join("regressions").join(e)).ok())
        .collect();
    let mut failures = Vec::new();
    let started = Instant::now();
    let mut calls = 0;
    for (index, (file, seed)) in seeds.iter().enumerate() {
        let mut rng = Rng::new(name, index);
        for i in 0..mutants {
            let input = mutate(seed, &mut rng);
            if !known.contains(&input) {
                check(t, &input, &format!("{name}/{file} mutant {i}"), &mut failures);
                calls += 1;
            }
        }
    }
    for (file, input) in files(&root().join("regressions").join(name)) {
        if !open.contains(&format!("{name}/{file}")) {
            check(t, &input, &format!("{name} regression {file}"), &mut failures);
            calls += 1;
        }
    }
    eprintln!("{name}: {calls} inputs in {:.2?}", started.elapsed());
    assert!(failures.is_empty(), "{} of {calls} inputs failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn mutants_of_cdr_messages() {
    mutate_target("cdr_messages", MUTANTS);
}

#[test]
fn mutants_of_image_decode() {
    mutate_target("image_decode", MUTANTS);
}

#[test]
fn mutants_of_compressed() {
    mutate_target("compressed", MUTANTS);
}

#[test]
fn mutants_of_mcap() {
    mutate_target("mcap", MUTANTS);
}

#[test]
fn mutants_of_params_yaml() {
    mutate_target("params_yaml", MUTANTS);
}

#[test]
fn mutants_of_safetensors_header() {
    mutate_target("safetensors_header", MUTANTS);
}

#[test]
fn mutants_of_index_json() {
    mutate_target("index_json", MUTANTS);
}

#[test]
fn mutants_of_model_config() {
    mutate_target("model_config", MUTANTS);
}

#[test]
fn mutants_of_pth_pickle() {
    mutate_target("pth_pickle", MUTANTS);
}

#[test]
fn mutants_of_linear_head_meta() {
    mutate_target("linear_head_meta", MUTANTS);
}

#[test]
fn mutants_of_labels() {
    mutate_target("labels", MUTANTS);
}

#[test]
fn mutants_of_coco_json() {
    mutate_target("coco_json", MUTANTS);
}

#[test]
fn mutants_of_coco_rle() {
    mutate_target("coco_rle", MUTANTS);
}

#[test]
fn mutants_of_eval_panoptic_json() {
    mutate_target("eval_panoptic_json", MUTANTS);
}

#[test]
fn mutants_of_label_png() {
    mutate_target("label_png", MUTANTS);
}

/// Seeds that a parser refuses would fuzz only its error paths: every seed must be accepted.
#[test]
fn every_seed_is_accepted_by_its_parser() {
    let mut refused = Vec::new();
    for (name, t) in harness::TARGETS {
        for (file, seed) in files(&root().join("corpus").join(name)) {
            if !t(&seed) {
                refused.push(format!("{name}/{file}"));
            }
        }
    }
    assert!(refused.is_empty(), "seeds refused by their parser: {refused:?}");
}

/// The libFuzzer binaries, the harness table, the seed folders and the regression folders name the same targets.
#[test]
fn every_target_has_a_fuzz_binary_and_seeds() {
    let names = |dir: &str, strip: &str| -> BTreeSet<String> {
        std::fs::read_dir(root().join(dir))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(|n| n.trim_end_matches(strip).to_string()))
            .filter(|n| n != "OPEN" && n != "README.md")
            .collect()
    };
    let table: BTreeSet<String> = harness::TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(names("fuzz_targets", ".rs"), table, "fuzz/fuzz_targets/*.rs against harness::TARGETS");
    assert_eq!(names("corpus", ""), table, "fuzz/corpus/* against harness::TARGETS");
    let regressions = names("regressions", "");
    assert!(regressions.is_subset(&table), "fuzz/regressions/* names unknown targets: {regressions:?}");
    for entry in open_regressions() {
        let path = root().join("regressions").join(&entry);
        assert!(path.is_file(), "fuzz/regressions/OPEN lists {entry}, which is not there");
    }
}

/// The engine itself: a parser that panics on short inputs or stalls is caught, not missed.
#[test]
fn mutation_engine_reports_a_panicking_or_slow_parser() {
    fn fragile(data: &[u8]) -> bool {
        assert!(data.len() >= 16, "short input");
        true
    }
    fn stalls(data: &[u8]) -> bool {
        if data.first() == Some(&0xff) {
            std::thread::sleep(CALL_LIMIT + Duration::from_millis(50));
        }
        true
    }
    let seed = [7u8; 24];
    let mut failures = Vec::new();
    let mut rng = Rng::new("engine", 0);
    for i in 0..200 {
        check(fragile, &mutate(&seed, &mut rng), &format!("engine fragile {i}"), &mut failures);
    }
    assert!(!failures.is_empty(), "200 mutants of a 24-byte seed never truncated it below 16 bytes");
    let mut slow = Vec::new();
    check(stalls, &[0xff], "engine stalls", &mut slow);
    assert_eq!(slow.len(), 1, "a call over the limit is reported");
    // Length-field overwrites find counts: 4-aligned u32 values within the input's size.
    assert_eq!(length_fields(&[3, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), vec![0]);
}

/// Crash inputs found but not fixed yet (fuzz/regressions/OPEN): `cargo test --test mutation -- --ignored`
/// shows which still fail; remove a line from OPEN once its fix is in.
#[test]
#[ignore = "found by the fuzzer, not fixed yet: see fuzz/regressions/OPEN"]
fn open_regressions_replay() {
    let mut failures = Vec::new();
    for entry in open_regressions() {
        let (name, _) = entry.split_once('/').unwrap_or((&entry, ""));
        let input = std::fs::read(root().join("regressions").join(&entry)).unwrap_or_default();
        check(target(name), &input, &format!("open regression {entry}"), &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
