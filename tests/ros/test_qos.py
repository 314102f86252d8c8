"""QoS: camera publishers against the node's subscription (`input.reliability` best_effort, the default, or
reliable) and output subscribers of either reliability."""

import pytest

from harness import DEMO_OUTPUTS, demo_params, make_image, stamp_key, with_keys

CAM = "/camera/image_raw"


@pytest.mark.parametrize(
    "node_reliability,pub_reliable",
    [("best_effort", False), ("best_effort", True), ("reliable", True)],
    ids=["best_effort-node+best_effort-camera", "best_effort-node+reliable-camera", "reliable-node+reliable-camera"],
)
def test_compatible_camera_qos_gets_outputs(ros, node_reliability, pub_reliable):
    params = demo_params()
    if node_reliability == "reliable":
        params = with_keys(params, **{"input.reliability": "reliable"})
    ros.start_node(params)
    col = ros.collector(CAM, ["semantic", "instances"])
    pub = ros.publisher(CAM, reliable=pub_reliable)
    assert ros.matched(pub), "camera publisher never matched the node's subscription"
    # Until the node's side has matched too, a best-effort reader drops what arrives: retry the first frame.
    assert ros.send_until(pub, lambda: make_image("rgb8", 48, 64), col) is not None, "no first frame through"
    sent = [make_image("rgb8", 48, 64, seed=i) for i in range(3)]
    for msg in sent:  # one at a time: the latest-frame slot would drop frames sent back to back
        pub.publish(msg)
        assert col.wait(stamp_key(msg.header), timeout=20), f"no outputs for a frame ({node_reliability} node)"


def test_best_effort_camera_does_not_match_a_reliable_node(ros):
    """A reliable subscription cannot match a best-effort publisher (DDS request/offer rule): nothing arrives,
    the node warns once naming the topic, the publisher and the fix, goes on, and /diagnostics says the camera
    is silent."""
    node = ros.start_node(with_keys(demo_params(), **{"input.reliability": "reliable", "node.diagnostics_period": 0.5}))
    diag = ros.diagnostics()
    col = ros.collector(CAM, ["semantic"])
    pub = ros.publisher(CAM, reliable=False)
    ros.spin_for(2.0)
    assert pub.get_subscription_count() == 0, "a best-effort publisher matched a reliable subscription"
    for i in range(5):
        pub.publish(make_image("rgb8", 48, 64, seed=i))
        ros.spin_for(0.2)
    assert ros.wait_for(lambda: len(diag.statuses(CAM)) >= 2, 10), "no diagnostics"
    ros.spin_for(1.0)
    assert col.got["semantic"] == [], "outputs for frames the node cannot have received"
    values = diag.latest(CAM)
    assert int(values["frames_received"]) == 0
    assert diag.statuses(CAM)[-1].message == "no frames received"
    warning = f"{CAM}: /dinoseg_test publishes best effort and input.reliability is reliable"
    assert ros.wait_for(lambda: warning in node.log(), 5), node.log()[-2000:]
    assert node.log().count(warning) == 1, "the mismatch is warned about more than once"
    # A reliable camera still works on the same node.
    rel = ros.publisher(CAM, reliable=True)
    assert ros.matched(rel)
    msg = make_image("rgb8", 48, 64)
    rel.publish(msg)
    assert col.wait(stamp_key(msg.header), timeout=20)


def test_reliable_and_best_effort_output_subscribers_both_receive(ros):
    ros.start_node()
    rel = ros.collector(CAM, DEMO_OUTPUTS, reliable=True)
    be = ros.collector(CAM, DEMO_OUTPUTS, reliable=False)
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    first = ros.send_until(pub, lambda: make_image("rgb8", 48, 64), be)
    assert first is not None, "a best-effort output subscriber got no complete frame"
    for i in range(3):
        msg = make_image("rgb8", 48, 64, seed=i)
        pub.publish(msg)
        key = stamp_key(msg.header)
        assert rel.wait(key), f"reliable subscriber: frame {i} incomplete"
        assert be.wait(key, timeout=5), f"best-effort subscriber: frame {i} incomplete"
    assert rel.got["label_info"], "the reliable transient-local subscriber got no label_info"
