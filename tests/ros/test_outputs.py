"""One camera, raw `sensor_msgs/Image` in every encoding the node decodes: each enabled output arrives with the
input's header at the camera's resolution, the semantic map equals `dinoseg run`'s on the same serialized
message, instances / detections / instance_ids agree, label_info is latched, /diagnostics reports the camera."""

import numpy as np
import pytest

from harness import (
    DEMO_OUTPUTS,
    IMAGE_OUTPUTS,
    demo_params,
    make_image,
    pixels,
    stamp_key,
    with_keys,
)
from offline import run_cli

CAM = "/camera/image_raw"
LABELS = ["background", "disk", "square", "triangle", "star", "ring"]

# (encoding, height, width, step or None)
CASES = {
    "rgb8": ("rgb8", 48, 64, None),
    "bgr8": ("bgr8", 48, 64, None),
    "mono8": ("mono8", 48, 64, None),
    "yuv422": ("yuv422", 48, 64, None),
    "bayer_rggb8": ("bayer_rggb8", 48, 64, None),
    "rgb8_padded": ("rgb8", 48, 64, 64 * 3 + 13),
    "rgb8_odd_77x53": ("rgb8", 53, 77, None),
    "bayer_odd_padded": ("bayer_rggb8", 53, 77, 96),
}


def check_header(msg, sent, what):
    assert stamp_key(msg.header) == stamp_key(sent.header), f"{what}: stamp"
    assert msg.header.frame_id == sent.header.frame_id, f"{what}: frame_id"


def check_frame(col, sent, outputs):
    """Every image output has the input's header and resolution; instance masks lie inside the image."""
    key = stamp_key(sent.header)
    for o in outputs:
        if o == "label_info":
            continue
        m = col.msg(o, key)
        assert m is not None, f"{o}: nothing with stamp {key}"
        check_header(m, sent, o)
        if o in IMAGE_OUTPUTS:
            assert (m.height, m.width) == (sent.height, sent.width), f"{o}: size {m.height}x{m.width}"
            bpp = {"mono8": 1, "mono16": 2, "rgb8": 3}[m.encoding]
            assert m.step >= m.width * bpp and len(m.data) == m.step * m.height, f"{o}: step/data"
    if "instances" in outputs:
        for inst in col.msg("instances", key).instances:
            r = inst.roi
            assert r.x_offset + r.width <= sent.width and r.y_offset + r.height <= sent.height, f"roi {r}"
            assert (inst.mask.height, inst.mask.width) == (r.height, r.width), "mask size != roi"
            assert len(inst.mask.data) >= inst.mask.step * inst.mask.height
    ids = col.msg("instance_ids", key)
    if ids is not None:
        assert ids.encoding == "mono16"


@pytest.mark.parametrize("case", list(CASES))
def test_encoding_outputs_and_offline_parity(ros, case):
    encoding, h, w, step = CASES[case]
    node = ros.start_node()
    col = ros.collector(CAM)
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_image(encoding, h, w, step, seed=3), col)
    assert sent is not None, f"no complete set of outputs for a {encoding} {w}x{h} frame"
    check_frame(col, sent, DEMO_OUTPUTS)
    assert ros.wait_for(lambda: col.got["label_info"], 10), "label_info never arrived"
    # The node's semantic map equals `dinoseg run`'s on the same serialized message.
    offline = run_cli(node.params_path, CAM, sent, ros.tmp / "cli")
    assert len(offline) == 1, f"dinoseg run gave {len(offline)} semantic messages"
    live = col.msg("semantic", stamp_key(sent.header))
    check_header(offline[0], sent, "offline semantic")
    assert (offline[0].height, offline[0].width, offline[0].encoding) == (live.height, live.width, live.encoding)
    a, b = pixels(live), pixels(offline[0])
    assert len(np.unique(a)) >= 2, "a semantic map of one class: the comparison would prove little"
    assert np.array_equal(a, b), f"{int((a != b).sum())} of {a.size} pixels differ from dinoseg run"


def test_instances_detections_and_ids_agree(ros):
    ros.start_node(with_keys(demo_params(), **{"outputs.detections": True}))
    outputs = DEMO_OUTPUTS + ["detections"]
    col = ros.collector(CAM, outputs)
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_image("rgb8", 120, 160, seed=5), col, outputs)
    assert sent is not None
    check_frame(col, sent, outputs)
    key = stamp_key(sent.header)
    instances = col.msg("instances", key).instances
    dets = col.msg("detections", key)
    ids = pixels(col.msg("instance_ids", key))
    assert len(instances) >= 1, "the demo model found no instance in a scene with a disk and a square"
    assert len(dets.detections) == len(instances)
    present = set(np.unique(ids).tolist()) - {0}
    inst_ids = {i.id for i in instances}
    assert present <= inst_ids, f"instance_ids values {present} not all instance ids {inst_ids}"
    for d in dets.detections:
        assert int(d.id) in present, f"detection id {d.id} not in instance_ids {present}"
        assert d.results and d.results[0].hypothesis.class_id.isdigit()
        check_header(d, sent, "detection")
    for inst in instances:
        assert 0 <= inst.class_id < len(LABELS) and inst.class_name == LABELS[inst.class_id]
        assert inst.score >= 0.5, "instance below thresholds.score"
        assert inst.area == int(np.count_nonzero(np.frombuffer(bytes(inst.mask.data), np.uint8)))


def test_label_info_reaches_a_late_subscriber(ros):
    ros.start_node()
    col = ros.collector(CAM, ["semantic"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_image("rgb8", 48, 64), col)
    assert sent is not None
    ros.spin_for(0.5)
    late = ros.collector(CAM, ["label_info"])  # created after the first frame was processed
    assert ros.wait_for(lambda: late.got["label_info"], 10), "transient-local label_info not delivered late"
    info = late.got["label_info"][0][0]
    assert [c.class_name for c in info.class_map] == LABELS
    assert [c.class_id for c in info.class_map] == list(range(len(LABELS)))
    assert info.threshold == pytest.approx(0.5)
    assert info.header.frame_id == sent.header.frame_id


def test_diagnostics_report_the_camera(ros):
    ros.start_node(with_keys(demo_params(), **{"node.diagnostics_period": 0.5}))
    diag = ros.diagnostics()
    col = ros.collector(CAM, ["semantic"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    assert ros.send_until(pub, lambda: make_image("rgb8", 48, 64), col) is not None

    def published():
        v = diag.latest(CAM)
        return v is not None and int(v.get("frames_published", 0)) >= 1

    assert ros.wait_for(published, 10), f"no diagnostics with frames_published >= 1: {diag.values(CAM)[-1:]}"
    status = diag.statuses(CAM)[-1]
    assert status.name == f"dinoseg: {CAM}"
    assert status.hardware_id == "cpu"
    values = diag.latest(CAM)
    for key in (
        "input_rate_hz", "output_rate_hz", "latency_p50_ms", "latency_p95_ms", "processing_p50_ms",
        "processing_p95_ms", "batch_size_mean", "frames_dropped_period", "frames_malformed_period",
        "frames_failed_period", "frames_received", "frames_published", "frames_dropped", "frames_malformed",
        "frames_failed", "publish_errors", "device",
    ):
        assert key in values, f"diagnostics lack {key}: {sorted(values)}"
    assert values["device"] == "cpu"
    assert int(values["frames_received"]) >= int(values["frames_published"]) >= 1
    assert int(values["frames_malformed"]) == 0 and int(values["frames_failed"]) == 0
