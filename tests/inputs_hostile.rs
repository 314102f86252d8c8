//! Hostile inputs to the tools' own surfaces: params and labels files that are special files, YAML that expands
//! or nests without bound, images whose extension lies or whose shape is absurd, and numeric flags out of range.
//! Each case is refused (or run) fast, with bounded memory, a clear message and the right exit status. The CLI
//! runs under an address-space cap and a wall-clock limit, so a regression fails the test instead of hanging it
//! or exhausting the machine.

mod common;

use common::params_fixtures::{parse_in, valid_dir, VALID};
use dinoseg::pipeline::preprocess::{ResizePolicy, DEFAULT_MAX_LONG_SIDE};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Address-space cap of the CLI under test (libtorch maps a lot of virtual memory; the bound is what matters).
const AS_CAP: &str = "--as=4000000000";

/// Runs `dinoseg ARGS` under [`AS_CAP`], killed after `secs`: (output, seconds taken, whether it was killed).
fn dinoseg_bounded(args: &[&str], secs: u64) -> (Output, f64, bool) {
    let mut child = Command::new("prlimit")
        .arg(AS_CAP)
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_dinoseg"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn prlimit dinoseg");
    let t = Instant::now();
    let mut killed = false;
    while child.try_wait().expect("wait").is_none() {
        if t.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            killed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (out, t.elapsed().as_secs_f64(), killed)
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(st.success());
}

#[test]
fn a_fifo_params_file_is_refused_by_type_without_blocking() {
    let dir = common::temp_dir("hostile-fifo");
    let fifo = dir.join("params.yaml");
    mkfifo(&fifo);
    let (o, secs, killed) = dinoseg_bounded(&["check-params", s(&fifo)], 10);
    let (_, err) = text(&o);
    assert!(!killed, "check-params blocked on a FIFO ({secs:.1} s)");
    assert!(!o.status.success() && err.contains("params.yaml") && err.contains("a FIFO"), "{err}");
}

#[test]
fn dev_zero_as_labels_is_refused_by_type() {
    let dir = valid_dir("hostile-labels");
    let params = dir.join("p.yaml");
    let body = VALID.replace("labels: labels5.txt", "labels: /dev/zero");
    std::fs::write(&params, common::params_fixtures::node(&body)).expect("write");
    let (o, secs, killed) = dinoseg_bounded(&["check-params", s(&params)], 10);
    let (_, err) = text(&o);
    assert!(!killed, "check-params read /dev/zero for {secs:.1} s");
    assert!(!o.status.success() && err.contains("/dev/zero") && err.contains("character device"), "{err}");
}

/// A billion-laughs document, with a padding list so that serde_yaml's own repetition limit (100 alias jumps
/// per event) would let it expand to ~10^8 values.
fn billion_laughs() -> String {
    let mut t = String::from("dinoseg:\n  ros__parameters:\n    device: cpu\n    x:\n");
    t.push_str("      a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        t.push_str(&format!("      a{i}: &a{i} [{refs}]\n"));
    }
    for i in 0..10 {
        t.push_str(&format!("    pad{i}: [{}]\n", vec!["0"; 9_900].join(",")));
    }
    t
}

#[test]
fn billion_laughs_and_deep_nesting_are_refused_fast() {
    let dir = common::temp_dir("hostile-yaml");
    let laughs = dir.join("laughs.yaml");
    std::fs::write(&laughs, billion_laughs()).expect("write");
    let (o, secs, killed) = dinoseg_bounded(&["check-params", s(&laughs)], 20);
    let (_, err) = text(&o);
    assert!(!killed && secs < 10.0, "billion laughs took {secs:.1} s");
    assert!(!o.status.success() && err.contains("laughs.yaml"), "{err}");
    assert!(err.contains("more than 100000 values") && err.contains("x.a"), "{err}");
    // Depth 1000, in flow and block style: refused at depth 32, naming the key path.
    let flow = format!("dinoseg:\n  ros__parameters:\n    deep: {}1{}\n", "[".repeat(1000), "]".repeat(1000));
    let block: String = (0..1000).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
    for (name, yaml) in [("flow.yaml", flow), ("block.yaml", block)] {
        let path = dir.join(name);
        std::fs::write(&path, yaml).expect("write");
        let (o, secs, killed) = dinoseg_bounded(&["check-params", s(&path)], 20);
        let (_, err) = text(&o);
        assert!(!killed && secs < 10.0, "{name} took {secs:.1} s");
        assert!(!o.status.success() && err.contains(name) && err.contains("nested more than 32"), "{name}: {err}");
    }
    // The library entry point says the same.
    let e = dinoseg::params::Params::from_yaml_str(&billion_laughs()).expect_err("refused").to_string();
    assert!(e.contains("more than 100000 values") && e.contains("line"), "{e}");
}

#[test]
fn the_default_resize_policy_caps_the_long_side() {
    // A 1x400000 strip runs at 1x2048 (padded 16x2048), a 4K frame at 2048x1152.
    let lb = ResizePolicy::default().plan(1, 400_000).expect("plan");
    assert_eq!((lb.resized_h, lb.resized_w, lb.padded_h, lb.padded_w), (1, 2048, 16, 2048));
    let lb = ResizePolicy::default().plan(2160, 3840).expect("plan");
    assert_eq!((lb.resized_h, lb.resized_w), (1152, 2048));
    // The cap must exceed a short-side target: none by default above it.
    assert_eq!(ResizePolicy::short_side(512).max_long_side, Some(DEFAULT_MAX_LONG_SIDE));
    assert_eq!(ResizePolicy::short_side(3000).max_long_side, None);
    // `keep` without a cap is still there; absurd planned sizes are refused, not allocated.
    let lb = ResizePolicy::keep().uncapped().plan(2160, 3840).expect("plan");
    assert_eq!((lb.padded_h, lb.padded_w), (2160, 3840));
    let e = ResizePolicy::short_side(512).uncapped().plan(1, 400_000).expect_err("refused").to_string();
    assert!(e.contains("1x400000") && e.contains("resize.max_long_side"), "{e}");
    // Params: absent = the default cap, 0 = none; documented in the key table.
    let dir = valid_dir("hostile-resize");
    let p = parse_in(&dir, VALID).expect("valid");
    assert_eq!(p.resize.max_long_side, Some(DEFAULT_MAX_LONG_SIDE));
    let p = parse_in(&dir, &format!("{VALID}resize: {{mode: keep, max_long_side: 0}}")).expect("valid");
    assert_eq!(p.resize.max_long_side, None);
    assert_eq!(dinoseg::params::Params::from_flat_in(&p.to_flat(), &dir).expect("round trip"), p);
    let info = dinoseg::params::describe("resize.max_long_side").expect("documented");
    assert!(info.description.contains("default 2048"), "{}", info.description);
}

/// A params file running the tiny EoMT fixture (semantic maps only).
fn eomt_params(dir: &Path, resize: &str) -> PathBuf {
    let text = format!(
        "dinoseg:\n  ros__parameters:\n    device: cpu\n    heads:\n      scene: {{type: eomt, checkpoint: {}, outputs: semantic}}\n    outputs: {{semantic: true, label_info: false}}\n{resize}",
        common::eomt_fixtures().join("eomt_p0").display()
    );
    let p = dir.join("params.yaml");
    std::fs::write(&p, text).expect("write params");
    p
}

#[test]
fn images_are_decoded_by_content_in_every_listed_format() {
    let dir = common::temp_dir("hostile-images");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let img = image::RgbImage::from_fn(40, 24, |x, y| image::Rgb([(x * 6) as u8, (y * 9) as u8, 128]));
    let formats = [
        ("a.bmp", image::ImageFormat::Bmp),
        ("b.tiff", image::ImageFormat::Tiff),
        ("c.webp", image::ImageFormat::WebP),
        ("d.pgm", image::ImageFormat::Pnm),
        ("e.png", image::ImageFormat::Jpeg), // a JPEG named .png
    ];
    for (name, format) in formats {
        img.save_with_format(images.join(name), format).expect("save");
    }
    let params = eomt_params(&dir, "");
    let out = dir.join("out");
    let (o, secs, killed) =
        dinoseg_bounded(&["run", "--params", s(&params), "--input", s(&images), "--output", s(&out)], 120);
    let (stdout, err) = text(&o);
    assert!(!killed && o.status.success(), "{secs:.1} s\n{stdout}\n{err}");
    assert!(!err.contains("unreadable"), "{err}");
    assert!(stdout.contains("| image files | 5 | 5 | 0 |"), "{stdout}");
    for stem in ["a", "b", "c", "d", "e"] {
        let sem = image::open(out.join(format!("{stem}_semantic.png"))).expect("semantic map").to_luma8();
        assert_eq!(sem.dimensions(), (40, 24), "{stem}");
    }
    // An --input that exists but is a special file is named as such, not "no such file".
    let fifo = dir.join("frames.png");
    mkfifo(&fifo);
    let (o, secs, killed) =
        dinoseg_bounded(&["run", "--params", s(&params), "--input", s(&fifo), "--output", s(&dir.join("o2"))], 60);
    let (_, err) = text(&o);
    assert!(!killed && !o.status.success() && err.contains("this is a FIFO"), "{secs:.1} s: {err}");
}

#[test]
fn a_1x400000_frame_runs_capped_and_fast() {
    let dir = common::temp_dir("hostile-strip");
    let images = dir.join("strip");
    std::fs::create_dir_all(&images).expect("mkdir");
    image::RgbImage::from_fn(400_000, 1, |x, _| image::Rgb([(x % 256) as u8, 0, 0]))
        .save(images.join("strip.png"))
        .expect("save");
    let params = eomt_params(&dir, "");
    let out = dir.join("out");
    let (o, secs, killed) =
        dinoseg_bounded(&["run", "--params", s(&params), "--input", s(&images), "--output", s(&out)], 60);
    let (stdout, err) = text(&o);
    assert!(!killed && o.status.success(), "{secs:.1} s\n{stdout}\n{err}");
    assert!(stdout.contains("| image files | 1 | 1 | 0 |"), "{stdout}");
    // Capped: the tiny model's pass takes ~0.2 s at 16x2048 (uncapped, at 16x400000: ~36 s on 2 cores).
    let model_ms: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("| model | ")?.split(" |").next()?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no model stage in:\n{stdout}"));
    assert!(secs < 20.0 && model_ms < 3000.0, "took {secs:.1} s, model {model_ms} ms");
    let sem = image::open(out.join("strip_semantic.png")).expect("semantic map");
    assert_eq!((sem.width(), sem.height()), (400_000, 1));
}

/// Runs each case (arguments, the flag the message must name): a usage error, exit status 2, naming the flag.
fn usage_errors(cases: &[(Vec<&str>, &str)]) {
    for (args, flag) in cases {
        let (o, secs, killed) = dinoseg_bounded(args, 20);
        let (_, err) = text(&o);
        assert!(!killed, "{args:?} ran {secs:.1} s");
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag) && err.contains("invalid value"), "{args:?}: {err}");
    }
}

#[test]
fn bench_core_rates_and_durations_out_of_range_are_usage_errors() {
    let dir = common::temp_dir("hostile-rates");
    let params = dir.join("none.yaml");
    let p = s(&params);
    usage_errors(&[
        (vec!["bench-core", "--params", p, "--rate", "nan"], "--rate"),
        (vec!["bench-core", "--params", p, "--rate", "0"], "--rate"),
        (vec!["bench-core", "--params", p, "--rate", "inf"], "--rate"),
        (vec!["bench-core", "--params", p, "--rate", "1e300"], "--rate"),
        (vec!["bench-core", "--params", p, "--seconds=-1"], "--seconds"),
        (vec!["bench-core", "--params", p, "--frames", "0"], "--frames"),
        (vec!["bench-core", "--params", p, "--cameras", "0"], "--cameras"),
        (vec!["bench-core", "--params", p, "--threads=-1"], "--threads"),
    ]);
}

#[test]
fn sizes_and_counts_out_of_range_are_usage_errors() {
    let dir = common::temp_dir("hostile-sizes");
    let params = dir.join("none.yaml");
    let p = s(&params);
    usage_errors(&[
        (vec!["convert", "a.pth", "out", "--image-size", "0"], "--image-size"),
        (vec!["convert", "a.pth", "out", "--num-heads=-3"], "--num-heads"),
        (vec!["bench-core", "--params", p, "--size", "0x640"], "--size"),
        (vec!["bench-core", "--params", p, "--size", "100000x100000"], "--size"),
        (vec!["demo", "--height", "0"], "--height"),
        (vec!["demo", "--width", "4000000000"], "--width"),
        (vec!["demo", "--iters", "0"], "--iters"),
        (vec!["run", "--params", p, "--input", "x", "--output", "y", "--max-frames", "0"], "--max-frames"),
    ]);
}
