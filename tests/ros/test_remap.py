"""Remapping: the node subscribes to the camera topic as rcl resolves it (a `-r from:=to` rule, the node's
namespace) and publishes its outputs next to the resolved topic."""

from harness import DEMO_OUTPUTS, demo_params, make_image, with_keys


def frames_through(ros, camera, out_ns):
    col = ros.collector(camera, DEMO_OUTPUTS, ns=out_ns)
    pub = ros.publisher(camera)
    assert ros.matched(pub), f"nothing subscribes to {camera}"
    sent = ros.send_until(pub, lambda: make_image("rgb8", 48, 64), col)
    assert sent is not None, f"no complete outputs under {out_ns} for frames on {camera}"
    assert ros.wait_for(lambda: col.got["label_info"], 10), f"{out_ns}/label_info"


def test_remapped_camera_topic_moves_the_outputs(ros):
    ros.start_node(
        demo_params(),
        extra_args=["-r", "/camera/image_raw:=/front/color/image_raw"],
        ready=[("/front/color/image_raw", "/front/color/dinoseg")],
    )
    frames_through(ros, "/front/color/image_raw", "/front/color/dinoseg")
    assert ros.node.count_subscribers("/camera/image_raw") == 0
    assert ros.node.count_publishers("/camera/dinoseg/semantic") == 0, "outputs left under /camera/dinoseg"


def test_namespace_applies_to_a_relative_camera_topic(ros):
    params = with_keys(demo_params(), **{"input.topics": ["camera/image_raw"]})
    ros.start_node(
        params,
        extra_args=["-r", "__ns:=/robot1"],
        ready=[("/robot1/camera/image_raw", "/robot1/camera/dinoseg")],
    )
    frames_through(ros, "/robot1/camera/image_raw", "/robot1/camera/dinoseg")
    assert ros.node.count_publishers("/camera/dinoseg/semantic") == 0
    names = [n for n, ns in ros.node.get_node_names_and_namespaces() if n == "dinoseg"]
    assert ("dinoseg", "/robot1") in ros.node.get_node_names_and_namespaces(), names
