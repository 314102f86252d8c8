//! Live parameters in the node's core: output switches, colours, thresholds, batch size and periods changed
//! while running take effect on the next frame, also from another thread while the worker runs.

mod common;

use common::node_fixtures::*;
use dinoseg::messages::{Image, LabelInfo, RosMessage};
use dinoseg::node::{Clock, Core, LiveConfig, ManualClock, MemoryTransport, SystemClock, Worker};
use dinoseg::postprocess::PostprocessConfig;
use dinoseg::topics::Output;
use std::sync::Arc;
use std::time::Duration;

/// (camera, output) of what was published since the last drain, sorted (cameras take turns in a batch).
fn published(worker: &mut Worker<FakeModel, MemoryTransport>) -> Vec<(usize, Output)> {
    let mut out: Vec<(usize, Output)> = worker.transport().drain().iter().map(|m| (m.camera, m.output)).collect();
    out.sort_by_key(|(c, o)| (*c, o.name()));
    out
}

/// Output switches and colours changed while running: the next frame follows them; `label_info` switched on
/// later is still published once per camera.
#[test]
fn live_outputs_and_colours_take_effect_on_the_next_frame() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(2, 2, &[Output::Semantic]), clock.clone());
    let mut worker =
        Worker::new(core.clone(), FakeModel::new(Some(clock.clone()), MS), MemoryTransport::new(clock.clone()));
    let both = |core: &Core| {
        core.submit(0, frame(0, clock.now_ns(), 4, 4));
        core.submit(1, frame(1, clock.now_ns(), 4, 4));
    };
    both(&core);
    worker.poll();
    assert_eq!(published(&mut worker), vec![(0, Output::Semantic), (1, Output::Semantic)]);

    let mut live = core.live().as_ref().clone();
    live.outputs = [Output::SemanticColor, Output::LabelInfo].into_iter().collect();
    for class in 0..4 {
        live.palette.overrides.insert(class, [1, 2, 3]);
    }
    core.set_live(live.clone());
    both(&core);
    worker.poll();
    let first = published(&mut worker);
    assert_eq!(
        first,
        vec![(0, Output::LabelInfo), (0, Output::SemanticColor), (1, Output::LabelInfo), (1, Output::SemanticColor)]
    );
    both(&core);
    worker.poll();
    let msgs = worker.transport().drain();
    assert!(msgs.len() == 2 && msgs.iter().all(|m| m.output == Output::SemanticColor), "label_info once per camera");
    let img = Image::from_cdr(&msgs[0].cdr).unwrap();
    assert!(img.data.chunks(3).all(|p| p == [1, 2, 3]), "the colour overrides are used: {:?}", &img.data[..6]);

    // Off and on again: label_info was sent to both cameras already.
    live.outputs = [Output::Semantic, Output::LabelInfo].into_iter().collect();
    core.set_live(live);
    both(&core);
    worker.poll();
    assert_eq!(published(&mut worker), vec![(0, Output::Semantic), (1, Output::Semantic)]);
}

/// New thresholds reach the model before its next pass (once, not every pass) and the score threshold the
/// published `LabelInfo` reports; a model that refuses them keeps its own, with a warning.
#[test]
fn live_thresholds_reach_the_model_on_the_next_frame() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), MS);
    let (given, seen) = (model.given.clone(), model.seen.clone());
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    core.submit(0, frame(0, 1, 4, 4));
    worker.poll();
    assert!(given.lock().unwrap().is_empty(), "the start-up config leaves the model's thresholds");

    let pp = PostprocessConfig { score_threshold: 0.3, top_k: 7, ..Default::default() };
    let live = LiveConfig {
        outputs: [Output::Semantic, Output::LabelInfo].into_iter().collect(),
        score_threshold: 0.3,
        postprocess: Some(pp),
        ..core.live().as_ref().clone()
    };
    core.set_live(live.clone());
    for _ in 0..3 {
        core.submit(0, frame(0, 1, 4, 4));
        worker.poll();
    }
    assert_eq!(*given.lock().unwrap(), vec![pp], "given once");
    assert_eq!(*seen.lock().unwrap(), vec![None, Some(0.3), Some(0.3), Some(0.3)]);
    let info = worker.transport().drain().into_iter().find(|m| m.output == Output::LabelInfo).expect("label_info");
    assert_eq!(LabelInfo::from_cdr(&info.cdr).unwrap().threshold, 0.3);

    let refused = PostprocessConfig { mask_threshold: 0.123, ..pp };
    core.set_live(LiveConfig { postprocess: Some(refused), ..live });
    core.submit(0, frame(0, 1, 4, 4));
    assert_eq!(worker.poll(), 1, "frames go on with the previous thresholds");
    assert_eq!(seen.lock().unwrap().last(), Some(&Some(0.3)));
    let w = &worker.transport().warnings;
    assert!(w.len() == 1 && w[0].contains("mask threshold refused"), "{w:?}");
}

/// `max_batch`, the diagnostics period and the warning interval changed while running.
#[test]
fn live_batch_size_and_periods() {
    let clock = Arc::new(ManualClock::new(MS));
    let core = Core::new(config(3, 3, &[Output::Semantic]), clock.clone());
    let model = FakeModel::new(Some(clock.clone()), MS);
    let batches = model.batches.clone();
    let mut worker = Worker::new(core.clone(), model, MemoryTransport::new(clock.clone()));
    let all = |core: &Core| (0..3).for_each(|c| core.submit(c, frame(c, 1, 4, 4)));
    all(&core);
    assert_eq!(worker.poll(), 3);
    core.set_live(LiveConfig { max_batch: 1, ..core.live().as_ref().clone() });
    all(&core);
    assert_eq!(worker.poll(), 1);
    assert_eq!(*batches.lock().unwrap(), vec![3, 1]);
    core.set_live(LiveConfig { max_batch: 0, ..core.live().as_ref().clone() });
    assert_eq!(core.live().max_batch, 1, "at least one frame per pass");

    // Diagnostics every second; after 500 ms none is due until the period becomes 200 ms.
    worker.publish_diagnostics();
    clock.advance(500 * MS);
    assert!(!worker.diagnostics_if_due());
    core.set_live(LiveConfig { diagnostics_period_ns: 200 * MS, ..core.live().as_ref().clone() });
    assert!(worker.diagnostics_if_due());

    // Warnings of one kind every 5 s; with a 10 ms interval the next one 20 ms later is not held back.
    core.submit(0, vec![1]);
    worker.poll();
    clock.advance(20 * MS);
    core.submit(0, vec![2]);
    worker.poll();
    assert_eq!(worker.transport().warnings.len(), 1);
    core.set_live(LiveConfig { warn_interval_ns: 10 * MS, ..core.live().as_ref().clone() });
    clock.advance(20 * MS);
    core.submit(0, vec![3]);
    worker.poll();
    assert_eq!(worker.transport().warnings.len(), 2, "{:?}", worker.transport().warnings);
}

/// The ROS thread changes the outputs while the threaded worker runs: frames published after the change carry
/// the new output, none before it.
#[test]
fn live_update_from_another_thread_while_the_worker_runs() {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let core = Core::new(config(1, 1, &[Output::Semantic]), clock.clone());
    let (worker_core, worker_clock) = (core.clone(), clock.clone());
    let handle = std::thread::spawn(move || {
        let mut w = Worker::new(worker_core, FakeModel::new(None, 5 * MS), MemoryTransport::new(worker_clock));
        w.run();
        w.into_parts().1
    });
    let producer = {
        let (core, clock) = (core.clone(), clock.clone());
        std::thread::spawn(move || {
            for _ in 0..40 {
                core.submit(0, frame(0, clock.now_ns(), 8, 8));
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(150));
    let switched_ns = clock.now_ns();
    core.set_live(LiveConfig {
        outputs: [Output::Semantic, Output::Overlay].into_iter().collect(),
        ..core.live().as_ref().clone()
    });
    producer.join().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    core.close();
    let transport = handle.join().unwrap();
    let overlays: Vec<u64> =
        transport.messages.iter().filter(|m| m.output == Output::Overlay).map(|m| m.at_ns).collect();
    assert!(overlays.len() >= 10, "{} overlays", overlays.len());
    assert!(overlays.iter().all(|&t| t >= switched_ns), "an overlay before the switch");
    let semantic = transport.messages.iter().filter(|m| m.output == Output::Semantic).count();
    assert!(semantic > overlays.len(), "frames before the switch had no overlay");
}
