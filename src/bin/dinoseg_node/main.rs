//! `dinoseg_node`: the ROS 2 node (cargo feature `ros`, r2r), a thin adapter over [`dinoseg::node`].
//!
//! Start-up: every `--params-file` is first checked by rcl's own YAML parser (a file rcl cannot read stops the
//! node with the file and rcl's reason, exit 1); the Fast DDS settings for camera-sized messages are applied
//! (`config/fastdds.xml`, unless the user set a profile); then the parameters (the same YAML as `dinoseg run`,
//! relative paths against the file's directory) are validated as a whole; a bad file stops the node with every
//! bad key named. The model is loaded and warmed up on a worker thread before any subscription exists. Camera
//! topics are resolved as rcl resolves them (namespace, remapping) and the outputs go next to the resolved
//! camera topic. Then each camera topic gets a raw subscription (CDR bytes, decoded by the core; sensor-data QoS
//! unless `input.reliability: reliable`), each output the heads can give a publisher (reliable, depth 5;
//! `label_info` transient local) that takes the CDR bytes the core encodes (`publish_raw`), and `/diagnostics` a
//! `DiagnosticArray` per period. Parameter services: `ros2 param get/list/describe/set`, live keys take effect
//! on the next frame. SIGINT/SIGTERM stop the subscriptions, let the running batch finish, and exit 0.

mod param_services;
mod startup;

use dinoseg::node::{Clock, Core, CoreConfig, SystemClock, Transport, Worker};
use dinoseg::params::{ParamValue, Params, Reliability};
use dinoseg::pipeline::RgbImage;
use dinoseg::segmenter::Segmenter;
use dinoseg::topics::{stream_topic, Output, Resolver, RosArgs, Stream};
use futures::executor::LocalPool;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use r2r::{ParameterValue, QosProfile};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const IMAGE: &str = "sensor_msgs/msg/Image";
const COMPRESSED: &str = "sensor_msgs/msg/CompressedImage";
const DIAGNOSTICS: &str = "diagnostic_msgs/msg/DiagnosticArray";
/// Size of the warm-up frame (the model's kernels and allocator are initialised before the first camera frame).
const WARM_UP: (u32, u32) = (480, 640);

/// The node's parameters as dotted keys, in our own value type.
fn flat_params(node: &r2r::Node) -> Result<BTreeMap<String, ParamValue>, String> {
    let params = node.params.lock().map_err(|_| "parameter table poisoned".to_string())?;
    Ok(params
        .iter()
        .map(|(k, p)| {
            let v = match &p.value {
                ParameterValue::NotSet => ParamValue::NotSet,
                ParameterValue::Bool(b) => ParamValue::Bool(*b),
                ParameterValue::Integer(i) => ParamValue::Int(*i),
                ParameterValue::Double(d) => ParamValue::Double(*d),
                ParameterValue::String(s) => ParamValue::String(s.clone()),
                ParameterValue::BoolArray(v) => ParamValue::BoolArray(v.clone()),
                ParameterValue::ByteArray(v) => ParamValue::IntArray(v.iter().map(|&b| i64::from(b)).collect()),
                ParameterValue::IntegerArray(v) => ParamValue::IntArray(v.clone()),
                ParameterValue::DoubleArray(v) => ParamValue::DoubleArray(v.clone()),
                ParameterValue::StringArray(v) => ParamValue::StringArray(v.clone()),
            };
            (k.clone(), v)
        })
        .collect())
}

/// Relative paths in the parameters (checkpoints, labels) resolve against the directory of the first
/// `--params-file` on the command line (the user's file; launch_ros adds its own temporary files after it), as
/// `dinoseg run --params FILE` resolves them; without one, against the working directory. `base_dir` overrides.
fn params_dir(args: &RosArgs) -> PathBuf {
    args.params_files
        .first()
        .and_then(|f| Path::new(f).parent().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The node's ROS clock (simulated time with `use_sim_time`), for stamp-to-publish latency.
struct RosClock(Arc<Mutex<r2r::Clock>>);

impl Clock for RosClock {
    fn now_ns(&self) -> u64 {
        match self.0.lock() {
            Ok(mut c) => c.get_now().map_or_else(|_| SystemClock.now_ns(), |d| d.as_nanos() as u64),
            Err(_) => SystemClock.now_ns(),
        }
    }
}

/// rcl publishers keyed by camera and stream.
struct RosTransport {
    publishers: HashMap<(usize, Stream), r2r::PublisherUntyped>,
    diagnostics: r2r::PublisherUntyped,
    logger: String,
    /// `DINOSEG_PUBLISH_TRACE=FILE`: one line per published message (`stamp_ns camera output publish_ns bytes`,
    /// system clock) for the transport-latency benchmark (bench/ros_latency.py).
    trace: Option<std::io::BufWriter<std::fs::File>>,
}

impl RosTransport {
    fn trace(&mut self, camera: usize, stream: &Stream, cdr: &[u8]) {
        use std::io::Write;
        let Some(t) = self.trace.as_mut() else { return };
        // Every output starts with a std_msgs/Header: stamp (int32 sec, uint32 nanosec) after the 4-byte
        // encapsulation header.
        let word = |i: usize| cdr.get(i..i + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        let stamp = match (word(4), word(8)) {
            (Some(sec), Some(ns)) => i64::from(sec as i32) * 1_000_000_000 + i64::from(ns),
            _ => -1,
        };
        let now = SystemClock.now_ns();
        if writeln!(t, "{stamp} {camera} {} {now} {}", stream.name(), cdr.len()).and_then(|_| t.flush()).is_err() {
            self.trace = None;
        }
    }
}

impl Transport for RosTransport {
    fn publish(&mut self, camera: usize, stream: &Stream, cdr: Vec<u8>) -> Result<(), String> {
        match self.publishers.get(&(camera, stream.clone())) {
            Some(p) => {
                p.publish_raw(&cdr).map_err(|e| e.to_string())?;
                self.trace(camera, stream, &cdr);
                Ok(())
            }
            None => Err("no publisher".into()),
        }
    }
    fn publish_diagnostics(&mut self, cdr: Vec<u8>) -> Result<(), String> {
        self.diagnostics.publish_raw(&cdr).map_err(|e| e.to_string())
    }
    fn warn(&mut self, message: &str) {
        r2r::log_warn!(&self.logger, "{}", message);
    }
}

fn run() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().collect();
    let ros_args = RosArgs::parse(&argv);
    startup::check_params_files(&ros_args.params_files)?;
    let middleware = startup::apply_middleware_profile();
    let ctx = startup::create_context()?;
    let mut node = r2r::Node::create(ctx, "dinoseg", "").map_err(|e| format!("ROS node: {e}"))?;
    let name = node.name().map_err(|e| e.to_string())?;
    let logger = node.logger().to_string();
    r2r::log_info!(&logger, "{middleware}");
    let flat = flat_params(&node)?;
    let params = Params::from_flat_in(&flat, &params_dir(&ros_args)).map_err(|e| {
        let files = if ros_args.params_files.is_empty() {
            "no --params-file".to_string()
        } else {
            format!("--params-file {}", ros_args.params_files.join(", "))
        };
        format!("invalid parameters ({files}):\n{e}")
    })?;
    if params.node.threads > 0 {
        tch::set_num_threads(params.node.threads as i32);
    }
    // ROS's own parameters (use_sim_time, qos_overrides.*) as given; ours come from the validated params.
    let mut ros_values: BTreeMap<String, ParamValue> =
        flat.into_iter().filter(|(k, _)| dinoseg::params::describe(k).is_none()).collect();
    let use_sim_time = matches!(ros_values.get("use_sim_time"), Some(ParamValue::Bool(true)));
    ros_values.insert("use_sim_time".into(), ParamValue::Bool(use_sim_time));
    if use_sim_time {
        let ts = node.get_time_source();
        ts.enable_sim_time(&mut node).map_err(|e| format!("use_sim_time: {e}"))?;
    }
    let clock: Arc<dyn Clock> = Arc::new(RosClock(node.get_ros_clock()));
    let mut cfg = CoreConfig::from_params(&params, &name);
    // Camera topics as rcl resolves them (namespace, remapping): outputs go next to the resolved topic.
    let resolver = Resolver {
        node_name: name.clone(),
        namespace: node.namespace().map_err(|e| e.to_string())?,
        remaps: ros_args.remaps.clone(),
    };
    let subscribed: Vec<String> = cfg.cameras.iter().map(|c| c.topic.clone()).collect();
    for cam in &mut cfg.cameras {
        cam.topic = resolver.resolve(&cam.topic);
    }

    // Publishers: reliable, shallow; label_info latched for late subscribers. Every output the heads can give
    // has one, so that `ros2 param set outputs.X true` works while running.
    let out_qos = QosProfile::default().reliable().keep_last(5);
    let mut available: Vec<Stream> = Output::ALL
        .into_iter()
        .filter(|o| params.set_live(&format!("outputs.{}", o.name()), &ParamValue::Bool(true)).is_ok())
        .map(Stream::main)
        .collect();
    // The other semantic heads' own topics (`<ns>/dinoseg/<head>/semantic`, ...), from the plan start-up builds.
    let plan = params.head_plan().map_err(|e| e.to_string())?;
    for head in plan.extra_semantic_names() {
        available.extend(dinoseg::plan::HEAD_OUTPUTS.map(|o| Stream::of_head(head, o)));
    }
    let mut publishers = HashMap::new();
    for (i, cam) in cfg.cameras.iter().enumerate() {
        for s in &available {
            let o = s.output;
            let qos = if o == Output::LabelInfo { out_qos.clone().transient_local() } else { out_qos.clone() };
            let topic = stream_topic(&cam.topic, s);
            let p = node
                .create_publisher_untyped(&topic, o.ros_type(), qos)
                .map_err(|e| format!("publisher {topic} ({}): {e}", o.ros_type()))?;
            publishers.insert((i, s.clone()), p);
        }
    }
    let diagnostics = node
        .create_publisher_untyped("/diagnostics", DIAGNOSTICS, QosProfile::default().reliable().keep_last(10))
        .map_err(|e| format!("publisher /diagnostics: {e}"))?;
    let trace = match std::env::var_os("DINOSEG_PUBLISH_TRACE") {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(&path)
                .map_err(|e| format!("DINOSEG_PUBLISH_TRACE {}: {e}", Path::new(&path).display()))?,
        )),
        None => None,
    };
    let transport = RosTransport { publishers, diagnostics, logger: logger.clone(), trace };

    // The model: loaded and warmed up on the worker thread before any subscription exists.
    let core = Core::new(cfg.clone(), clock);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<String, String>>();
    let worker_core = core.clone();
    let worker_params = params.clone();
    let worker = std::thread::Builder::new()
        .name("dinoseg-worker".into())
        .spawn(move || {
            let seg = match worker_params.segmenter_config().and_then(Segmenter::new) {
                Ok(s) => s,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("loading the model: {e}")));
                    return;
                }
            };
            let warm = RgbImage::new(WARM_UP.1, WARM_UP.0);
            let t = std::time::Instant::now();
            if let Err(e) = seg.segment(&[&warm]) {
                let _ = ready_tx.send(Err(format!("warm-up: {e}")));
                return;
            }
            let _ = ready_tx.send(Ok(format!("warm-up {:.0} ms", t.elapsed().as_secs_f64() * 1e3)));
            Worker::new(worker_core, seg, transport).run();
        })
        .map_err(|e| format!("worker thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(msg)) => {
            r2r::log_info!(&logger, "model on {} ({}) ready, {msg}", params.device, params.precision.as_str())
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Err("the model worker stopped during start-up".into()),
    }

    // Subscriptions: raw CDR into the latest-frame slots.
    let in_qos = match params.reliability() {
        Reliability::BestEffort => QosProfile::sensor_data(),
        Reliability::Reliable => QosProfile::sensor_data().reliable(),
    };
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let state = Arc::new(Mutex::new(param_services::ParamState::new(params.clone(), ros_values)));
    param_services::serve(&mut node, &spawner, state, core.clone(), logger.clone())?;
    for (i, cam) in cfg.cameras.iter().enumerate() {
        let ty = if cam.compressed { COMPRESSED } else { IMAGE };
        // Subscribed by the parameter's name: rcl resolves it to `cam.topic` (a rule applies once).
        let stream = node
            .subscribe_raw(&subscribed[i], ty, in_qos.clone())
            .map_err(|e| format!("subscription {} ({ty}): {e}", cam.topic))?;
        let core = core.clone();
        spawner
            .spawn_local(stream.for_each(move |cdr| {
                core.submit(i, cdr);
                futures::future::ready(())
            }))
            .map_err(|e| e.to_string())?;
        r2r::log_info!(&logger, "{} ({ty}) -> {}/*", cam.topic, dinoseg::topics::output_namespace(&cam.topic));
    }

    let stop = Arc::new(AtomicBool::new(false));
    on_signal(stop.clone());
    let mut warned = dinoseg::node::publishers::Warnings::default();
    let mut next_check = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        node.spin_once(Duration::from_millis(10));
        pool.run_until_stalled();
        if std::time::Instant::now() >= next_check {
            next_check += PUBLISHER_CHECK;
            check_publishers(&node, &cfg, params.reliability(), &logger, &mut warned);
        }
    }
    r2r::log_info!(&logger, "shutting down");
    core.close();
    worker.join().map_err(|_| "the model worker panicked".to_string())?;
    Ok(())
}

/// How often the camera topics' publishers are checked against the subscriptions.
const PUBLISHER_CHECK: Duration = Duration::from_secs(2);

/// Warns once per publisher of a camera topic that can never reach the node (another type, best effort against
/// a reliable subscription): DDS itself says nothing, the camera just looks silent.
fn check_publishers(
    node: &r2r::Node,
    cfg: &CoreConfig,
    ours: Reliability,
    logger: &str,
    warned: &mut dinoseg::node::publishers::Warnings,
) {
    use dinoseg::node::publishers::{mismatch, PublisherInfo, UNKNOWN_NODE_NAME};
    for cam in &cfg.cameras {
        let expected = if cam.compressed { COMPRESSED } else { IMAGE };
        let Ok(infos) = node.get_publishers_info_by_topic(&cam.topic, false) else { continue };
        for info in infos {
            let named = info.node_name != UNKNOWN_NODE_NAME;
            let node = if named {
                format!("{}/{}", info.node_namespace.trim_end_matches('/'), info.node_name)
            } else {
                "a node the ROS graph does not name".to_string()
            };
            let p = PublisherInfo {
                node,
                type_name: info.topic_type.clone(),
                best_effort: matches!(info.qos_profile.reliability, r2r::qos::ReliabilityPolicy::BestEffort),
            };
            if let Some(w) = mismatch(&cam.topic, expected, ours, &p) {
                if warned.should_warn(&cam.topic, &info.endpoint_gid, named) {
                    r2r::log_warn!(logger, "{w}");
                }
            }
        }
    }
}

/// Sets `flag` on SIGINT/SIGTERM.
fn on_signal(flag: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
            rt.block_on(async {
                let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            });
        }
        flag.store(true, Ordering::Relaxed);
    });
}

fn main() -> ExitCode {
    dinoseg::error::install_quiet_panic_hook();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dinoseg_node: {e}");
            ExitCode::FAILURE
        }
    }
}
