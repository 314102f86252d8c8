"""Stamp-to-receive latency of dinoseg_node's outputs through a real ROS 2 (Fast DDS), next to the node's own
stamp-to-publish time for the same frames, and a soak mode (resident memory, lost messages).

The client (rclpy, one process) is the camera and the viewer: it publishes 640x480 rgb8 frames at a fixed rate on
each camera topic and subscribes to every output with a reliable subscription (raw CDR: only the header stamp is
read, so that Python's deserialization is not counted as transport). The node runs the demo model with
every output on and writes a publish trace (DINOSEG_PUBLISH_TRACE: stamp, output, publish time), so that for each
message:  stamp -> publish (in the node, before DDS: the core's figure)  and  publish -> receive (added by DDS).

Settings compared (`--settings`, comma separated):
  default   Fast DDS's default transports everywhere (node: DINOSEG_FASTDDS_PROFILE=off; client: none)
  node      the node as shipped (it applies config/fastdds.xml to itself), camera/viewer on defaults
  shipped   config/fastdds.xml on both sides (the node's own, and FASTRTPS_DEFAULT_PROFILES_FILE in the client),
            as README "Middleware" recommends for cameras and viewers on the robot

    source tools/ros/env.sh
    "$DINOSEG_ROS_PYTHON" bench/ros_latency.py --cameras 1 2 --frames 300 --json bench/results/ros_latency.json
    "$DINOSEG_ROS_PYTHON" bench/ros_latency.py --soak 600 --cameras 2 --settings shipped

Runs one setting at a time (a fresh node per run, its own ROS_DOMAIN_ID); prints a table.
"""

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTPUTS = ['semantic', 'semantic_color', 'instances', 'instance_ids', 'detections', 'overlay']


def params_yaml(cameras, threads):
    demo = ROOT / 'config' / 'demo'
    topics = ', '.join(f'"/cam{i}/image_raw"' for i in range(cameras))
    return f"""dinoseg:
  ros__parameters:
    device: cpu
    heads:
      scene: {{type: eomt, checkpoint: {demo}/eomt, outputs: instances, labels: {demo}/labels.txt}}
      semantic: {{type: linear, checkpoint: {demo}/linear_head.safetensors, source: eomt}}
    thresholds: {{score: 0.5, query: 0.5}}
    input: {{topics: [{topics}]}}
    outputs: {{semantic: true, semantic_color: true, instances: true, instance_ids: true, detections: true,
              label_info: true, overlay: true}}
    node: {{max_batch: {cameras}, threads: {threads}}}
"""


def quantiles(values):
    if not values:
        return {'n': 0}
    v = sorted(values)
    q = lambda p: v[min(len(v) - 1, int(round(p * (len(v) - 1))))]
    return {'n': len(v), 'p50': q(0.5), 'p95': q(0.95), 'max': v[-1]}


def rss_kb(pid):
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def client(args, setting, domain, frames, seconds, out_file):
    """Runs in a child process with the client-side environment: publishes, receives, writes the records to
    `out_file`, then shuts rclpy down (so that its Fast DDS shared-memory segment is removed) and ends."""
    import numpy as np
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray
    from dinoseg_interfaces.msg import InstanceMaskArray

    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain)
    node = rclpy.create_node('bench_client', context=ctx)
    types = {'instances': InstanceMaskArray, 'detections': Detection2DArray}
    received = []
    lock = threading.Lock()

    def on(cam, out):
        # Raw CDR (no Python deserialization of ~3 MB per frame, which would be timed as transport): every
        # output starts with a std_msgs/Header, its stamp after the 4-byte encapsulation header.
        def cb(raw):
            t = time.time_ns()
            sec, nsec = struct.unpack_from('<iI', raw, 4)
            with lock:
                received.append((sec * 1_000_000_000 + nsec, cam, out, t))
        return cb

    rel = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    from diagnostic_msgs.msg import DiagnosticArray
    node_received = {}

    def on_diag(msg):
        for st in msg.status:
            for kv in st.values:
                if kv.key == 'frames_received':
                    node_received[st.name] = int(kv.value)
    node.create_subscription(DiagnosticArray, '/diagnostics', on_diag, rel)
    pubs = []
    for cam in range(args.cameras):
        pubs.append(node.create_publisher(Image, f'/cam{cam}/image_raw', qos_profile_sensor_data))
        for out in OUTPUTS:
            node.create_subscription(types.get(out, Image), f'/cam{cam}/dinoseg/{out}', on(cam, out), rel, raw=True)
    ex = SingleThreadedExecutor(context=ctx)
    ex.add_node(node)
    spinning = [True]

    def spin():
        while spinning[0]:
            ex.spin_once(timeout_sec=0.05)
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    deadline = time.time() + 120
    while time.time() < deadline and not all(
            node.count_publishers(f'/cam{c}/dinoseg/overlay') and node.count_subscribers(f'/cam{c}/image_raw')
            for c in range(args.cameras)):
        time.sleep(0.1)
    time.sleep(1.0)
    h, w = args.size
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    data = base.tobytes()
    period = 1.0 / args.rate
    sent = 0
    start = time.monotonic()
    n = frames if not seconds else int(seconds * args.rate)
    for i in range(n):
        target = start + i * period
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.time_ns()
        for cam, pub in enumerate(pubs):
            m = Image()
            m.header.stamp.sec, m.header.stamp.nanosec = divmod(now + cam, 1_000_000_000)
            m.header.frame_id = f'cam{cam}'
            m.height, m.width, m.encoding, m.step = h, w, 'rgb8', w * 3
            m.data = data
            pub.publish(m)
            sent += 1
    time.sleep(3.0)
    with lock:
        rec = list(received)
    Path(out_file).write_text(json.dumps({'sent': sent, 'received': rec, 'elapsed_s': time.monotonic() - start,
                                          'node_received': sum(node_received.values())}))
    spinning[0] = False
    spinner.join(timeout=5)
    ex.shutdown()
    node.destroy_node()
    rclpy.shutdown(context=ctx)


def run_one(args, setting, cameras):
    domain = random.randint(1, 100)
    tmp = Path(tempfile.mkdtemp(prefix='dinoseg_bench_'))
    params = tmp / 'params.yaml'
    params.write_text(params_yaml(cameras, args.threads))
    trace = tmp / 'trace.txt'
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST',
               DINOSEG_PUBLISH_TRACE=str(trace))
    for v in ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE'):
        env.pop(v, None)
    env['DINOSEG_FASTDDS_PROFILE'] = 'off' if setting == 'default' else 'shipped'
    log = open(tmp / 'node.log', 'w')
    node = subprocess.Popen([str(ROOT / 'target/release/dinoseg_node'), '--ros-args', '--params-file', str(params)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    client_env = dict(env)
    client_env.pop('DINOSEG_PUBLISH_TRACE')
    if setting == 'shipped':
        client_env['FASTRTPS_DEFAULT_PROFILES_FILE'] = str(ROOT / 'config' / 'fastdds.xml')
    sub_args = argparse.Namespace(**{**vars(args), 'cameras': cameras})
    out_file = tmp / 'client.json'
    code = (f'import json, sys; sys.path.insert(0, {str(ROOT / "bench")!r}); import ros_latency as b, argparse; '
            f'b.client(argparse.Namespace(**{vars(sub_args)!r}), {setting!r}, {domain}, {args.frames}, '
            f'{args.soak}, {str(out_file)!r})')
    rss = []
    proc = subprocess.Popen([sys.executable, '-c', code], env=client_env)
    while proc.poll() is None:
        r = rss_kb(node.pid)
        if r:
            rss.append((time.monotonic(), r))
        time.sleep(2.0 if args.soak else 0.5)
    node.terminate()
    try:
        node.wait(timeout=20)
    except subprocess.TimeoutExpired:
        node.kill()
    log.close()
    if proc.returncode != 0 or not out_file.exists():
        raise SystemExit(f'client failed ({proc.returncode}); node log: {tmp / "node.log"}')
    res = json.loads(out_file.read_text())
    published = {}
    for line in trace.read_text().splitlines():
        stamp, cam, out, t, size = line.split()
        if out in OUTPUTS:
            published[(int(stamp), int(cam), out)] = (int(t), int(size))
    got = {(s, c, o): t for s, c, o, t in res['received']}
    s2p = [(t - s) / 1e6 for (s, c, o), (t, _) in published.items()]
    s2r = [(got[k] - k[0]) / 1e6 for k in published if k in got]
    added = [(got[k] - published[k][0]) / 1e6 for k in published if k in got]
    lost = [k for k in published if k not in got]
    frames = {(s, c) for (s, c, o) in published}
    # Per frame: its last output's arrival beyond its last publish (how late the frame is complete).
    late, first = [], []
    for f in frames:
        keys = [k for k in published if (k[0], k[1]) == f]
        if all(k in got for k in keys):
            late.append((max(got[k] for k in keys) - max(published[k][0] for k in keys)) / 1e6)
        # The quickest message of the frame: transport alone, without waiting in the client behind the frame's
        # other messages (one Python thread takes them one by one).
        here = [(got[k] - published[k][0]) / 1e6 for k in keys if k in got]
        if here:
            first.append(min(here))
    warm = [r for t, r in rss if t - rss[0][0] > 60] if args.soak and rss else []
    return {
        'setting': setting, 'cameras': cameras, 'node_threads': args.threads, 'rate_hz': args.rate, 'size': f'{args.size[0]}x{args.size[1]}',
        'frames_sent': res['sent'], 'frames_received_by_node': res['node_received'], 'frames_published': len(frames), 'messages_published': len(published),
        'messages_received': len(published) - len(lost), 'messages_lost': len(lost),
        'stamp_to_publish_ms': quantiles(s2p), 'stamp_to_receive_ms': quantiles(s2r),
        'publish_to_receive_ms': quantiles(added), 'fastest_message_of_frame_ms': quantiles(first), 'frame_complete_after_publish_ms': quantiles(late),
        'frames_over_100ms_added': sum(1 for x in late if x > 100),
        'bytes_per_frame': sum(sz for (_, sz) in published.values()) // max(1, len(frames)),
        'rss_kb_after_warmup_first': warm[0] if warm else None, 'rss_kb_last': warm[-1] if warm else None,
        'rss_growth_pct': (100.0 * (warm[-1] - warm[0]) / warm[0]) if warm else None,
    }


def show(rows):
    print('| setting | cams | frames sent / at node / out | msgs out / lost | stamp->publish p50/p95/max | '
          'stamp->receive p50/p95/max | publish->receive p50/p95/max | fastest msg of frame p50/p95 | '
          'frame late >100 ms |')
    print('|---|---|---|---|---|---|---|---|---|')
    f = lambda q: f"{q.get('p50', 0):.1f} / {q.get('p95', 0):.1f} / {q.get('max', 0):.1f}" if q['n'] else 'n/a'
    f2 = lambda q: f"{q.get('p50', 0):.1f} / {q.get('p95', 0):.1f}" if q['n'] else 'n/a'
    for r in rows:
        print(f"| {r['setting']} | {r['cameras']} | {r['frames_sent']} / {r['frames_received_by_node']} / "
              f"{r['frames_published']} | "
              f"{r['messages_published']} / {r['messages_lost']} | {f(r['stamp_to_publish_ms'])} | "
              f"{f(r['stamp_to_receive_ms'])} | {f(r['publish_to_receive_ms'])} | "
              f"{f2(r['fastest_message_of_frame_ms'])} | {r['frames_over_100ms_added']} |")
        if r['rss_growth_pct'] is not None:
            print(f"|   rss after warm-up {r['rss_kb_after_warmup_first']} kB -> {r['rss_kb_last']} kB "
                  f"({r['rss_growth_pct']:+.2f}%) | | | | | | | | |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--cameras', type=int, nargs='+', default=[1, 2], choices=[1, 2, 3, 4])
    ap.add_argument('--settings', default='default,node,shipped')
    ap.add_argument('--rate', type=float, default=30.0)
    ap.add_argument('--frames', type=int, default=300)
    ap.add_argument('--size', type=lambda s: tuple(int(x) for x in s.split('x')), default=(480, 640))
    ap.add_argument('--soak', type=float, default=0.0, help='seconds to run instead of --frames (memory, losses)')
    ap.add_argument('--threads', type=int, default=0, help="the node's node.threads (0: libtorch's default)")
    ap.add_argument('--json')
    args = ap.parse_args()
    if not (0 < args.rate <= 200 and 0 < args.frames <= 100000 and 0 <= args.soak <= 7200):
        ap.error('rate in (0, 200], frames in (0, 100000], soak in [0, 7200]')
    settings = [s for s in args.settings.split(',') if s]
    if any(s not in ('default', 'node', 'shipped') for s in settings):
        ap.error('settings: default, node, shipped')
    rows = []
    for cams in args.cameras:
        for s in settings:
            rows.append(run_one(args, s, cams))
            show(rows[-1:])
    print()
    show(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == '__main__':
    main()
