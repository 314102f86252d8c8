//! `dinoseg run` loses nothing: an output that is the input (same path, symbolic link, hard link), an output or
//! `--files` folder that is the input folder, a `--stats-json` that is the input: refused before anything is
//! written, the input unchanged byte for byte. SIGINT in the middle of a run: a readable bag with the frames
//! done, the statistics, exit 130. A frame the model fails on (error or panic) is dropped and counted, the run
//! goes on.

#[path = "common/bags.rs"]
mod bags;
mod common;

use bags::{dinoseg_run, params, stats, topic_counts, write_bag, BagSpec, TOPIC};
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::{FrameSegmentation, LabelData, LabelMap};
use dinoseg::runner::{run_with_model, RunModel, RunOptions};
use dinoseg::segmenter::StageTimes;
use std::path::Path;
use std::time::{Duration, Instant};

fn refused(o: &std::process::Output, what: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains(what) && err.contains("refusing to overwrite an input"), "{err}");
}

#[test]
fn an_output_that_is_the_input_is_refused_and_the_input_is_unchanged() {
    let dir = common::temp_dir("hostile-same");
    let input = dir.join("in.mcap");
    let bytes = write_bag(&input, BagSpec::default());
    let p = params(&dir);
    let link = dir.join("link.mcap");
    std::os::unix::fs::symlink(&input, &link).expect("symlink");
    let hard = dir.join("hard.mcap");
    std::fs::hard_link(&input, &hard).expect("hard link");
    for output in [&input, &link, &hard] {
        let o = dinoseg_run(&[("--params", &p), ("--input", &input), ("--output", output)]);
        refused(&o, "--output");
        assert_eq!(std::fs::read(&input).expect("read"), bytes, "{}", output.display());
    }
    // --stats-json pointing at the input, or at the parameters.
    for target in [&input, &p] {
        let before = std::fs::read(target).expect("read");
        let out = dir.join("out.mcap");
        let o = dinoseg_run(&[("--params", &p), ("--input", &input), ("--output", &out), ("--stats-json", target)]);
        refused(&o, "--stats-json");
        assert_eq!(std::fs::read(target).expect("read"), before);
        assert!(!out.exists());
    }
    // Nothing but the inputs, links and parameters is left (no temporary files).
    let names: Vec<String> =
        std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn an_output_folder_that_is_the_input_folder_is_refused() {
    let dir = common::temp_dir("hostile-folder");
    let images = dir.join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    let img = image::RgbImage::from_fn(20, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 11, 7]));
    img.save(images.join("a.png")).expect("save");
    let p = params(&dir);
    let o = dinoseg_run(&[("--params", &p), ("--input", &images), ("--output", &images)]);
    refused(&o, "--output");
    let o =
        dinoseg_run(&[("--params", &p), ("--input", &images), ("--output", &dir.join("out")), ("--files", &images)]);
    refused(&o, "--files");
    let via_dot = images.join(".");
    let o = dinoseg_run(&[("--params", &p), ("--input", &images.join("a.png")), ("--output", &via_dot)]);
    refused(&o, "--output");
    assert_eq!(std::fs::read_dir(&images).expect("dir").count(), 1, "only the input image is there");
}

#[test]
fn sigint_in_the_middle_of_a_run_leaves_a_readable_bag_and_the_statistics() {
    let dir = common::temp_dir("hostile-sigint");
    let input = dir.join("many.mcap");
    // More frames than any machine runs in the 2 s before the signal (tiny frames: the bag stays small).
    write_bag(&input, BagSpec { frames: 2000, chunk_size: 1 << 16, ..BagSpec::default() });
    let p = params(&dir);
    let (out, json) = (dir.join("out.mcap"), dir.join("stats.json"));
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dinoseg"))
        .arg("run")
        .args(["--params", p.to_str().expect("utf-8"), "--input", input.to_str().expect("utf-8")])
        .args(["--output", out.to_str().expect("utf-8"), "--stats-json", json.to_str().expect("utf-8")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn dinoseg");
    // The temporary output appears once the model is loaded and frames start.
    let temp = dir.join(format!(".out.mcap.tmp-{}", child.id()));
    let start = Instant::now();
    while !temp.exists() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(2000));
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(130), "{status:?}");
    let s = stats(&json);
    assert_eq!(s["interrupted_by_signal"], 2, "{s}");
    assert_eq!(s["exit_code"], 130);
    let done = s["topics"][TOPIC]["frames_out"].as_u64().expect("frames_out");
    assert!(done > 0 && done < 2000, "{s}");
    assert!(!temp.exists());
    // A finished bag (summary and all) with exactly the frames done: inputs copied, results written.
    let bag = dinoseg::bag::BagReader::open(&out).expect("open the interrupted run's bag");
    assert!(bag.damage().is_empty(), "{:?}", bag.damage());
    let counts = topic_counts(&out);
    assert_eq!(counts.get("/camera/dinoseg/semantic"), Some(&done), "{counts:?}");
}

/// A model that fails on frames 13 pixels wide, panics on frames 14 wide, and labels the others 0.
struct Flaky;

impl RunModel for Flaky {
    fn segment_timed(&self, images: &[&RgbImage]) -> dinoseg::Result<(Vec<FrameSegmentation>, StageTimes)> {
        let mut out = Vec::new();
        for img in images {
            match img.width() {
                13 => return Err(dinoseg::Error::OutOfMemory { device: "cuda:0".into(), message: "simulated".into() }),
                14 => panic!("simulated libtorch failure"),
                _ => out.push(FrameSegmentation {
                    semantic: Some(LabelMap {
                        height: img.height(),
                        width: img.width(),
                        data: LabelData::U8(vec![0; (img.width() * img.height()) as usize]),
                    }),
                    class_names: vec!["a".into()],
                    ..Default::default()
                }),
            }
        }
        Ok((out, StageTimes::default()))
    }
    fn produces_instances(&self) -> bool {
        false
    }
}

#[test]
fn a_frame_the_model_fails_on_is_dropped_and_counted_and_the_run_goes_on() {
    let dir = common::temp_dir("hostile-model");
    let input = dir.join("in.mcap");
    // Widths 12, 13 (fails), 14 (panics), 15, 12, 13 (fails).
    {
        let path = dir.join("tmp.mcap");
        let mut w = dinoseg::bag::BagWriter::create(&path).expect("writer");
        let ch = w.add_topic(TOPIC, "sensor_msgs/msg/Image").expect("topic");
        for (i, width) in [12u32, 13, 14, 15, 12, 13].into_iter().enumerate() {
            w.write(ch, i as u64 + 1, i as u64 + 1, &bags::frame(i as u64, width, 10)).expect("write");
        }
        w.finish().expect("finish");
        std::fs::rename(&path, &input).expect("rename");
    }
    let opts = RunOptions {
        params: params(&dir),
        input: input.to_str().expect("utf-8").into(),
        output: dir.join("out.mcap"),
        all_topics: false,
        max_frames: None,
        files: None,
        stats_json: Some(dir.join("stats.json")),
    };
    let s = run_with_model(&opts, |_| Ok(Box::new(Flaky)));
    assert!(s.error.is_none(), "{:?}", s.error);
    let c = s.topics[TOPIC];
    assert_eq!((c.frames_in, c.frames_out, c.failed), (6, 3, 3), "{c:?}");
    assert_eq!(s.exit_code(), 2);
    let json = stats(&dir.join("stats.json"));
    assert_eq!(json["topics"][TOPIC]["failed"], 3);
    assert_eq!(topic_counts(&dir.join("out.mcap")).get("/camera/dinoseg/semantic"), Some(&3));
    assert!(!Path::new(&dir.join("out.mcap")).is_dir());
}
