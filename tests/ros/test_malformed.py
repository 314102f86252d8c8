"""Malformed camera messages over the wire: each is dropped (no output with its stamp), a warning naming the
topic and the problem is logged, /diagnostics counts it (frames_malformed), and the next good frame is
processed."""

import re

import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CompressedImage, Image

import imaging
from harness import demo_params, make_compressed, make_image, stamp_key, with_keys

WARN = b"\x01"  # diagnostic_msgs/DiagnosticStatus.WARN
RAW = "/camera/image_raw"
COMPRESSED = "/camera/image_raw/compressed"


def short_data():
    m = make_image("rgb8", 48, 64)
    m.data = bytes(m.data)[: m.step * m.height - 100]
    return m


def bad_step():
    m = make_image("rgb8", 48, 64)
    m.step = 64 * 3 - 3
    m.data = bytes(m.data)[: m.step * m.height]
    return m


def unknown_encoding():
    m = make_image("rgb8", 48, 64)
    m.encoding = "foo16"
    return m


def corrupt_jpeg():
    return make_compressed("jpeg", 48, 64, data=imaging.corrupt_jpeg())


# name: (camera topic, message type, bad message factory, what the warning says about it)
CASES = {
    "short_data": (RAW, Image, short_data, r"short"),
    "bad_step": (RAW, Image, bad_step, r"step"),
    "unknown_encoding": (RAW, Image, unknown_encoding, r"foo16"),
    "corrupt_jpeg": (COMPRESSED, CompressedImage, corrupt_jpeg, r"jpe?g"),
}


def good(topic):
    return make_compressed("jpeg", 48, 64) if topic.endswith("/compressed") else make_image("rgb8", 48, 64)


def warnings_about(log, topic):
    return [line for line in log.splitlines() if "WARN" in line and topic in line]


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_message_is_dropped_warned_counted(ros, case):
    topic, msg_type, make_bad, problem = CASES[case]
    node = ros.start_node(with_keys(demo_params(), **{"input.topics": [topic], "node.diagnostics_period": 0.5}))
    diag = ros.diagnostics()
    col = ros.collector(topic, ["semantic", "instances"])
    pub = ros.publisher(topic, msg_type)
    assert ros.matched(pub)
    assert ros.send_until(pub, lambda: good(topic), col) is not None, "a good frame before got no outputs"

    bad = make_bad()
    pub.publish(bad)

    def counted():
        v = diag.latest(topic)
        return v is not None and int(v["frames_malformed"]) >= 1

    assert ros.wait_for(counted, 10), f"/diagnostics never counted the malformed message: {diag.latest(topic)}"
    assert ros.wait_for(lambda: warnings_about(node.log(), topic), 5), "no warning naming the topic"
    warned = warnings_about(node.log(), topic)
    assert any(re.search(problem, line, re.I) for line in warned), f"warning does not say what is wrong: {warned}"
    values = diag.latest(topic)
    assert int(values["frames_malformed"]) == 1
    period = [(s, {kv.key: kv.value for kv in s.values}) for s in diag.statuses(topic)]
    flagged = [s for s, v in period if int(v["frames_malformed_period"])]
    assert flagged and all(s.level == WARN for s in flagged), "the period with the malformed message is not WARN"

    after = good(topic)
    pub.publish(after)
    assert col.wait(stamp_key(after.header)), "the good frame after the malformed one got no outputs"
    for o in ("semantic", "instances"):
        assert col.msg(o, stamp_key(bad.header)) is None, f"{o} for the malformed message"
    assert node.running()


def test_truncated_cdr_is_dropped_warned_counted(ros):
    """Bytes that do not decode as a sensor_msgs/Image at all (the serialized message cut in half)."""
    node = ros.start_node(with_keys(demo_params(), **{"node.diagnostics_period": 0.5}))
    diag = ros.diagnostics()
    col = ros.collector(RAW, ["semantic"])
    pub = ros.publisher(RAW)
    assert ros.matched(pub)
    assert ros.send_until(pub, lambda: good(RAW), col) is not None
    cdr = serialize_message(make_image("rgb8", 48, 64))
    pub.publish(cdr[: len(cdr) // 2])
    assert ros.wait_for(lambda: (diag.latest(RAW) or {}).get("frames_malformed") == "1", 10), diag.latest(RAW)
    assert ros.wait_for(lambda: warnings_about(node.log(), RAW), 5), "no warning naming the topic"
    after = good(RAW)
    pub.publish(after)
    assert col.wait(stamp_key(after.header))
    assert len(col.got["semantic"]) == 2, "outputs for the truncated message"
