"""The end-to-end harness: one isolated ROS 2 world per test around a real `dinoseg_node` process.

`RosEnv` (the `ros` fixture of conftest.py) owns a DDS domain of its own, an rclpy Context and executor, the node
processes it started (stdout/stderr to files) and a tmp dir. Helpers: `start_node` (a params file from
config/demo.yaml, readiness by discovery of the node's outputs and camera subscription), `Collector` (every
output of one camera, with receive times), `Diagnostics`, `wait_for` (spins the executor), parameter service
calls; `make_image` / `make_compressed` build camera messages. offline.py runs `dinoseg run` on a frame.
"""

import copy
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from dinoseg_interfaces.msg import InstanceMaskArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image
from vision_msgs.msg import Detection2DArray, LabelInfo

import imaging

REPO = Path(__file__).resolve().parents[2]
NODE_BIN = REPO / "target" / "release" / "dinoseg_node"
CLI_BIN = REPO / "target" / "release" / "dinoseg"
DEMO = REPO / "config" / "demo.yaml"

OUTPUT_TYPES = {
    "semantic": Image,
    "semantic_color": Image,
    "instances": InstanceMaskArray,
    "instance_ids": Image,
    "detections": Detection2DArray,
    "label_info": LabelInfo,
    "overlay": Image,
}
# What config/demo.yaml publishes (label_info is on by default, detections off).
DEMO_OUTPUTS = ["semantic", "semantic_color", "instances", "instance_ids", "overlay", "label_info"]
IMAGE_OUTPUTS = ["semantic", "semantic_color", "instance_ids", "overlay"]
START_TIMEOUT = 60.0
FRAME_TIMEOUT = 20.0


def output_ns(camera_topic):
    """`<ns>/dinoseg` for a camera topic, as src/topics.rs names it."""
    t = camera_topic.rstrip("/")
    if t.endswith("/compressed"):
        t = t[: -len("/compressed")]
    return (t[: t.rfind("/")] if "/" in t else "") + "/dinoseg"


def demo_params():
    """config/demo.yaml's `ros__parameters` with absolute checkpoint paths and `node.threads: 1`."""
    doc = yaml.safe_load(DEMO.read_text())
    p = copy.deepcopy(doc["dinoseg"]["ros__parameters"])
    for head in p["heads"].values():
        for key in ("checkpoint", "labels"):
            if key in head:
                head[key] = str((DEMO.parent / head[key]).resolve())
    p.setdefault("node", {})["threads"] = 1
    return p


def with_keys(params, **dotted):
    """A copy of `params` with dotted keys set: `with_keys(p, **{"thresholds.score": 0.9})`."""
    p = copy.deepcopy(params)
    for key, value in dotted.items():
        *parents, last = key.split(".")
        d = p
        for part in parents:
            d = d.setdefault(part, {})
        d[last] = value
    return p


def stamp_ns(ns):
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def stamp_key(header):
    return (header.stamp.sec, header.stamp.nanosec)


def make_image(encoding, h, w, step=None, rgb=None, stamp=None, frame_id="camera_optical", seed=0):
    """A `sensor_msgs/Image` of `rgb` (default: a synthetic scene) in `encoding`, stamped now unless given."""
    rgb = imaging.scene(h, w, seed) if rgb is None else rgb
    data, step = imaging.encode_raw(rgb, encoding, step)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=0, step=step)
    msg.data = data
    msg.header.stamp = stamp if stamp is not None else stamp_ns(time.time_ns())
    msg.header.frame_id = frame_id
    return msg


def make_compressed(fmt, h, w, rgb=None, stamp=None, frame_id="camera_optical", seed=0, data=None):
    """A `sensor_msgs/CompressedImage` (`jpeg` or `png`) of a scene; `data` replaces the encoded bytes."""
    rgb = imaging.scene(h, w, seed) if rgb is None else rgb
    msg = CompressedImage(format=fmt)
    if data is None:
        data = imaging.encode_jpeg(rgb) if fmt == "jpeg" else imaging.encode_png(rgb)
    msg.data = data
    msg.header.stamp = stamp if stamp is not None else stamp_ns(time.time_ns())
    msg.header.frame_id = frame_id
    return msg


def qos(reliable=True, depth=10, transient=False):
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient else DurabilityPolicy.VOLATILE,
    )


class NodeProc:
    """A started `dinoseg_node` and its log files."""

    def __init__(self, args, env, workdir, params_path):
        self.params_path = params_path
        self.out_path = workdir / "node.stdout"
        self.err_path = workdir / "node.stderr"
        self.args = args
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)

    def stdout(self):
        return self.out_path.read_text(errors="replace")

    def stderr(self):
        return self.err_path.read_text(errors="replace")

    def log(self):
        return self.stdout() + self.stderr()

    def running(self):
        return self.proc.poll() is None

    def wait_exit(self, timeout):
        """The exit code, or None if still running after `timeout` s."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def send(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        """Stops the node: SIGTERM (a clean exit removes its Fast DDS shared-memory segment; SIGKILL would leave
        it in /dev/shm), SIGKILL if it is still there after 10 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Collector:
    """Subscribes to outputs of one camera; `got[output]` is a list of (msg, receive time ns)."""

    def __init__(self, env, camera_topic, outputs=DEMO_OUTPUTS, reliable=True, ns=None):
        self.env = env
        self.ns = ns or output_ns(camera_topic)
        self.got = {o: [] for o in outputs}
        self.subs = []
        for o in outputs:
            # label_info is latched: a reliable transient-local subscriber gets it late too.
            q = qos(reliable, transient=(o.endswith("label_info") and reliable))
            cb = (lambda out: lambda m: self.got[out].append((m, time.time_ns())))(o)
            # `scene/semantic`: a head's own stream, typed as its output.
            msg_type = OUTPUT_TYPES[o.rsplit("/", 1)[-1]]
            self.subs.append(env.node.create_subscription(msg_type, f"{self.ns}/{o}", cb, q))

    def topic(self, output):
        return f"{self.ns}/{output}"

    def msg(self, output, key):
        """The message of `output` whose header stamp is `key` (sec, nanosec), or None."""
        for m, _ in self.got[output]:
            if stamp_key(m.header) == key:
                return m
        return None

    def stamps(self, output):
        return [stamp_key(m.header) for m, _ in self.got[output]]

    def complete(self, key, outputs=None):
        outs = [o for o in (outputs or self.got) if not o.endswith("label_info")]
        return all(self.msg(o, key) is not None for o in outs)

    def wait(self, key, outputs=None, timeout=FRAME_TIMEOUT):
        return self.env.wait_for(lambda: self.complete(key, outputs), timeout)

    def count(self):
        return sum(len(v) for v in self.got.values())

    def matched(self, timeout=10.0):
        """Waits until every output subscription has matched the node's publisher."""
        return self.env.wait_for(lambda: all(s.get_publisher_count() >= 1 for s in self.subs), timeout)


class Diagnostics:
    """Records /diagnostics; `status(topic)` is the newest status naming the camera, key/values as a dict."""

    def __init__(self, env):
        self.env = env
        self.arrays = []
        cb = lambda m: self.arrays.append((m, time.time_ns()))  # noqa: E731
        self.sub = env.node.create_subscription(DiagnosticArray, "/diagnostics", cb, qos(True, 50))

    def matched(self, timeout=10.0):
        """Waits until the subscription has matched the node's /diagnostics publisher (volatile: what is
        published before is not seen)."""
        return self.env.wait_for(lambda: self.sub.get_publisher_count() >= 1, timeout)

    def statuses(self, topic):
        return [s for a, _ in self.arrays for s in a.status if s.name.endswith(": " + topic)]

    def values(self, topic):
        """Key/values of every status of `topic`, oldest first."""
        return [{kv.key: kv.value for kv in s.values} for s in self.statuses(topic)]

    def latest(self, topic):
        v = self.values(topic)
        return v[-1] if v else None


class RosEnv:
    """One test's ROS world (see the module docstring)."""

    def __init__(self, domain, tmp_path):
        import rclpy
        from rclpy.context import Context

        self.rclpy = rclpy
        self.domain = domain
        self.tmp = tmp_path
        self.ctx = Context()
        rclpy.init(context=self.ctx, domain_id=domain)
        self.node = rclpy.create_node("dinoseg_test", context=self.ctx)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self.procs = []
        self.env = dict(os.environ)
        self.env.pop("ROS_LOCALHOST_ONLY", None)
        self.env.update(
            ROS_DOMAIN_ID=str(domain),
            ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
            RCUTILS_LOGGING_BUFFERED_STREAM="0",
            RCUTILS_COLORIZED_OUTPUT="0",
            OMP_WAIT_POLICY="PASSIVE",
        )

    # Spinning ---------------------------------------------------------------------------------------------

    def spin_for(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def wait_for(self, predicate, timeout):
        """Spins until `predicate()` holds (True) or `timeout` s pass (False)."""
        end = time.monotonic() + timeout
        while True:
            if predicate():
                return True
            if time.monotonic() >= end:
                return False
            self.executor.spin_once(timeout_sec=0.02)

    # The node ---------------------------------------------------------------------------------------------

    def write_params(self, params, name="params.yaml"):
        """A params file: a dict of `ros__parameters` under `dinoseg`, or raw YAML text."""
        path = self.tmp / name
        text = params if isinstance(params, str) else yaml.safe_dump({"dinoseg": {"ros__parameters": params}})
        path.write_text(text)
        return path

    def start_node(
        self, params=None, extra_args=(), ready=None, wait=True, timeout=START_TIMEOUT, ready_output="semantic"
    ):
        """Starts `dinoseg_node --ros-args --params-file F *extra_args`. With `wait`, returns once the node's
        outputs and camera subscriptions are discovered: `ready` lists (camera topic, output ns) as the graph
        shows them (default: the params' input.topics); `ready_output` is the output whose publisher counts (a
        params file without a semantic output names another). `params`: a dict, YAML text or an existing file's Path."""
        assert NODE_BIN.exists(), f"{NODE_BIN} is missing: make ros-build"
        params = demo_params() if params is None else params
        path = params if isinstance(params, Path) else self.write_params(params, f"params{len(self.procs)}.yaml")
        workdir = self.tmp / f"node{len(self.procs)}"
        workdir.mkdir()
        args = [str(NODE_BIN), "--ros-args", "--params-file", str(path), *extra_args]
        proc = NodeProc(args, self.env, workdir, path)
        self.procs.append(proc)
        if not wait:
            return proc
        if ready is None:
            topics = params.get("input", {}).get("topics", ["/camera/image_raw"]) if isinstance(params, dict) else []
            topics = topics or ["/camera/image_raw"]
            ready = [(t, output_ns(t)) for t in topics]

        def up():
            assert proc.running(), f"dinoseg_node exited with {proc.proc.returncode} during start-up"
            return all(
                self.node.count_publishers(f"{ns}/{ready_output}") >= 1 and self.node.count_subscribers(t) >= 1
                for t, ns in ready
            )

        assert self.wait_for(up, timeout), f"dinoseg_node not ready after {timeout} s"
        return proc

    # Endpoints --------------------------------------------------------------------------------------------

    def publisher(self, topic, msg_type=Image, reliable=False, depth=5):
        return self.node.create_publisher(msg_type, topic, qos(reliable, depth))

    def matched(self, pub, timeout=10.0):
        """Waits until `pub` has matched a subscription (the node's)."""
        return self.wait_for(lambda: pub.get_subscription_count() >= 1, timeout)

    def collector(self, camera_topic, outputs=DEMO_OUTPUTS, reliable=True, ns=None, match=True):
        """A `Collector`; with `match`, once each of its subscriptions has matched a publisher."""
        c = Collector(self, camera_topic, outputs, reliable, ns)
        unmatched = lambda: [s.topic_name for s in c.subs if s.get_publisher_count() == 0]  # noqa: E731
        assert not match or c.matched(), f"nobody publishes {unmatched()}"
        return c

    def diagnostics(self):
        return Diagnostics(self)

    def send_until(self, pub, make, collector, outputs=None, timeout=FRAME_TIMEOUT, every=1.0):
        """Publishes `make()` (a fresh stamp each time) every `every` s until one's outputs all arrived; that
        message, or None. Copes with a best-effort match that is not complete on the node's side yet."""
        end = time.monotonic() + timeout
        sent = []
        while time.monotonic() < end:
            msg = make()
            sent.append(msg)
            pub.publish(msg)
            if self.wait_for(lambda: any(collector.complete(stamp_key(m.header), outputs) for m in sent), every):
                return next(m for m in sent if collector.complete(stamp_key(m.header), outputs))
        return None

    # Parameter services -----------------------------------------------------------------------------------

    def call(self, srv_type, name, request, timeout=10.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert self.wait_for(client.service_is_ready, timeout), f"service {name} not available"
            future = client.call_async(request)
            assert self.wait_for(future.done, timeout), f"service {name}: no response in {timeout} s"
            return future.result()
        finally:
            self.node.destroy_client(client)

    # Teardown ---------------------------------------------------------------------------------------------

    def close(self):
        for p in self.procs:
            p.kill()
        try:
            self.executor.shutdown(timeout_sec=1.0)
            self.node.destroy_node()
        finally:
            self.rclpy.shutdown(context=self.ctx)


def pixels(img):
    """An Image's data as an (h, w[, c]) numpy array (rows cut to width * bytes per pixel)."""
    bpp = {"mono8": 1, "mono16": 2, "rgb8": 3}[img.encoding]
    rows = np.frombuffer(bytes(img.data), dtype=np.uint8).reshape(img.height, img.step)[:, : img.width * bpp]
    if img.encoding == "mono16":
        return rows.copy().view("<u2").reshape(img.height, img.width)
    return rows.reshape(img.height, img.width, bpp) if bpp == 3 else rows
