//! Typed errors and the quiet panic hook: out of memory is recognised where libtorch errors and panics become
//! errors (a real CPU allocation failure, CUDA's wording), callers match `ErrorKind` (the node's warning hint),
//! unusable files are `Error::File`, and a panic inside a guarded section prints nothing while every other panic
//! still reaches the hook installed before.

mod common;

use common::node_fixtures::{config, frame, MS};
use dinoseg::error::{catch_quiet, install_quiet_panic_hook, ErrorKind};
use dinoseg::node::{Core, FrameModel, ManualClock, MemoryTransport, Worker};
use dinoseg::pipeline::preprocess::PreprocessError;
use dinoseg::pipeline::RgbImage;
use dinoseg::postprocess::FrameSegmentation;
use dinoseg::postprocess::PostprocessError;
use dinoseg::topics::Output;
use dinoseg::Error;
use std::sync::{Arc, Mutex};
use tch::{Device, Kind, Tensor};

/// More bytes than any machine has: libtorch's CPU allocator refuses at once.
const TOO_MANY: i64 = 1 << 50;

const CUDA_OOM: &str = "CUDA out of memory. Tried to allocate 20.00 GiB. GPU 1 has a total capacity of 139.81 GiB of \
                        which 1.25 GiB is free.\nException raised from malloc at /pytorch/c10/cuda/CUDACachingAllocator.cpp";

#[test]
fn a_real_libtorch_allocation_failure_is_out_of_memory() {
    // Returned (tch's f_ API, `?` converts it) ...
    let e = Tensor::f_zeros([TOO_MANY], (Kind::Float, Device::Cpu)).map_err(Error::from).err();
    let e = e.expect("allocating 4 PiB should fail");
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(matches!(&e, Error::OutOfMemory { device, .. } if device == "cpu"), "{e:?}");
    // ... or raised as a panic inside `guarded`.
    let e = dinoseg::model::guarded(|| Tensor::zeros([TOO_MANY], (Kind::Float, Device::Cpu))).err();
    let e = e.expect("allocating 4 PiB should fail");
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    assert!(e.to_string().starts_with("out of memory on cpu: [enforce fail at "), "{e}");
    assert!(!e.to_string().contains("Exception raised"), "{e}");
}

/// On the GPU machine (`bench/gpu.sh tests`): CUDA's real allocator failure, returned and raised inside
/// `guarded`, is out of memory on `cuda:0`, and the device stays usable for the next frame.
#[test]
fn a_real_cuda_allocation_failure_is_out_of_memory_when_a_gpu_exists() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device: skipped");
        return;
    }
    let gpu = Device::Cuda(0);
    let e = Tensor::f_zeros([TOO_MANY], (Kind::Float, gpu)).map_err(Error::from).err();
    let e = e.expect("allocating 4 PiB on the GPU should fail");
    assert!(matches!(&e, Error::OutOfMemory { device, .. } if device == "cuda:0"), "{e:?}");
    let e = dinoseg::model::guarded(|| Tensor::zeros([TOO_MANY], (Kind::Float, gpu))).err();
    let e = e.expect("allocating 4 PiB on the GPU should fail");
    assert_eq!(e.kind(), ErrorKind::OutOfMemory, "{e}");
    println!("cuda out of memory: {e}");
    let ok = Tensor::ones([1024, 1024], (Kind::Float, gpu)).sum(Kind::Float).double_value(&[]);
    assert_eq!(ok, 1024.0 * 1024.0, "the GPU is usable after the failure");
}

#[test]
fn cuda_out_of_memory_names_the_gpu_and_drops_the_backtrace() {
    let e = Error::from(tch::TchError::Torch(CUDA_OOM.into()));
    assert_eq!(e.kind(), ErrorKind::OutOfMemory);
    assert!(matches!(&e, Error::OutOfMemory { device, .. } if device == "cuda:1"), "{e:?}");
    let shown = e.to_string();
    assert!(shown.contains("CUDA out of memory. Tried to allocate 20.00 GiB"), "{shown}");
    assert!(!shown.contains("Exception raised"), "{shown}");
    // Through the pre- and post-processing errors that carry a libtorch error.
    let pre = PreprocessError::Torch { op: "resize", source: tch::TchError::Torch(CUDA_OOM.into()) };
    assert_eq!(Error::from(pre).kind(), ErrorKind::OutOfMemory);
    let post = PostprocessError::Torch(tch::TchError::Torch(CUDA_OOM.into()));
    assert_eq!(Error::from(post).kind(), ErrorKind::OutOfMemory);
}

#[test]
fn other_failures_are_not_out_of_memory() {
    let e = Error::from(tch::TchError::Torch("shape '[2, 3]' is invalid for input of size 7".into()));
    assert_eq!(e.kind(), ErrorKind::Internal);
    let e = dinoseg::model::guarded(|| Tensor::zeros([7], (Kind::Float, Device::Cpu)).view([2, 3])).err();
    let e = e.expect("a view of the wrong size should fail");
    assert_eq!(e.kind(), ErrorKind::Internal, "{e}");
    assert!(e.to_string().starts_with("libtorch failed: shape '[2, 3]' is invalid for input of size 7"), "{e}");
    // A message that merely mentions memory in another sense is not the allocator's.
    let e = Error::Runtime("out of range: memory_format".into());
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert_eq!(Error::parameter("resize.max_long_side", "must be > 0").kind(), ErrorKind::Parameter);
    assert_eq!(Error::checkpoint("m.safetensors", "no tensor").kind(), ErrorKind::Checkpoint);
    assert_eq!(Error::file("x.png", "not a regular file").kind(), ErrorKind::Input);
}

/// One test owns the process's panic hook: a recording hook first, the quiet hook on top of it.
#[test]
fn guarded_panics_print_nothing_and_other_panics_reach_the_previous_hook() {
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    // Tests run in parallel: only this test's thread and the (unnamed) thread it spawns are recorded.
    let me = std::thread::current().name().map(str::to_string);
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().map(str::to_string);
        if name.is_none() || name == me {
            let text = dinoseg::error::panic_text(info.payload());
            record.lock().unwrap_or_else(|p| p.into_inner()).push(text);
        }
    }));
    install_quiet_panic_hook();
    let seen_now = || seen.lock().unwrap_or_else(|p| p.into_inner()).clone();

    // A libtorch panic inside `guarded`: an error, and silence.
    let e = dinoseg::model::guarded(|| Tensor::zeros([TOO_MANY], (Kind::Float, Device::Cpu))).err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::OutOfMemory));
    // Any panic inside `catch_quiet`, nested too: silence, and the caller learns where it was raised.
    let caught = catch_quiet(|| {
        let inner = catch_quiet(|| panic!("inner failure"));
        assert!(inner.is_err());
        panic!("outer failure")
    })
    .expect_err("the closure panicked");
    assert_eq!(caught.text(), "outer failure");
    assert!(caught.location.as_deref().is_some_and(|l| l.starts_with("tests/errors.rs:")), "{caught:?}");
    let e = Error::model_panic(&caught);
    assert_eq!(e.kind(), ErrorKind::Internal);
    assert!(e.to_string().starts_with("the model panicked: outer failure (at tests/errors.rs:"), "{e}");
    assert_eq!(seen_now(), Vec::<String>::new(), "guarded panics reached the previous hook");

    // Outside a guarded section (after one ended, or on another thread of one) panics print as before.
    // A libtorch panic caught around the model: its message, without tch's wrapping or the C++ backtrace.
    let caught = catch_quiet(|| Tensor::zeros([7], (Kind::Float, Device::Cpu)).view([2, 3])).expect_err("bad view");
    let e = Error::model_panic(&caught).to_string();
    assert!(e.starts_with("the model panicked: shape '[2, 3]' is invalid for input of size 7 (at "), "{e}");
    assert_eq!(seen_now(), Vec::<String>::new(), "guarded panics reached the previous hook");

    let _ = std::panic::catch_unwind(|| panic!("a bug outside"));
    let _ = catch_quiet(|| std::thread::spawn(|| panic!("a bug on a worker thread")).join());
    assert_eq!(seen_now(), vec!["a bug outside".to_string(), "a bug on a worker thread".to_string()]);
}

#[test]
fn unusable_files_are_typed_file_errors_naming_the_path() {
    let dir = std::env::temp_dir();
    let e = dinoseg::files::read_text_capped(&dir, 10, "params file").expect_err("a folder is not a params file");
    assert_eq!(e.kind(), ErrorKind::Input, "{e}");
    let Error::File { path, message } = &e else { panic!("expected Error::File, got {e:?}") };
    assert_eq!(path, &dir);
    assert!(message.starts_with("params file must be a regular file"), "{message}");
    assert_eq!(e.to_string(), format!("{}: {message}", dir.display()));
    // A missing file is the operating system's answer: an I/O error.
    let e = dinoseg::files::check_regular(&dir.join("no such file.yaml"), "params file").err();
    assert_eq!(e.map(|e| e.kind()), Some(ErrorKind::Io));
}

/// A model whose forward pass asks libtorch for more memory than there is (tch raises it as a panic).
struct Greedy;

impl FrameModel for Greedy {
    fn segment(&mut self, _frames: &[&RgbImage]) -> dinoseg::Result<Vec<FrameSegmentation>> {
        let _ = Tensor::zeros([TOO_MANY], (Kind::Float, Device::Cpu));
        Ok(vec![])
    }
    fn produces_instances(&self) -> bool {
        false
    }
}

/// The node drops a frame the model ran out of memory on with one warning that says so and how to avoid it.
#[test]
fn an_out_of_memory_panic_in_the_model_is_one_warning_with_the_hint() {
    let clock = Arc::new(ManualClock::new(1_000 * MS));
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let mut worker = Worker::new(core.clone(), Greedy, MemoryTransport::new(clock.clone()));
    core.submit(0, frame(0, 1_000 * MS, 4, 4));
    assert_eq!(worker.poll(), 0);
    assert_eq!(core.totals(0).failed, 1);
    let w = &worker.transport().warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("frame ") && w[0].contains("dropped: out of memory on cpu: "), "{}", w[0]);
    assert!(w[0].contains("lower resize or node.max_batch"), "{}", w[0]);
}
