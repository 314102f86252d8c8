"""Every configured head publishes (issue 11): with the demo's EoMT head giving a panoptic map beside the linear
head, the EoMT head's own semantic map, its colour picture and its class names arrive on
`<ns>/dinoseg/scene/...` with the input's header and size, while the main `semantic` stays the linear head's and
equals `dinoseg run`'s; a head whose results go nowhere stops the node at start-up with the reason."""

import numpy as np

from harness import demo_params, make_image, pixels, stamp_key, with_keys
from offline import run_cli

CAM = "/camera/image_raw"
LABELS = ["background", "disk", "square", "triangle", "star", "ring"]
HEAD_OUTPUTS = ["scene/semantic", "scene/semantic_color", "scene/label_info"]


def test_a_second_semantic_head_publishes_on_its_own_topics(ros):
    params = demo_params()
    params["heads"]["scene"]["outputs"] = "panoptic"
    node = ros.start_node(params)
    outputs = ["semantic", "label_info", *HEAD_OUTPUTS]
    col = ros.collector(CAM, outputs)
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_image("rgb8", 48, 64, seed=4), col, outputs)
    assert sent is not None, "no complete set of outputs (the head's own topics included)"
    key = stamp_key(sent.header)
    for o in ["semantic", "scene/semantic", "scene/semantic_color"]:
        m = col.msg(o, key)
        assert (m.header.frame_id, m.height, m.width) == (sent.header.frame_id, sent.height, sent.width), o
        bpp = {"mono8": 1, "mono16": 2, "rgb8": 3}[m.encoding]
        assert len(m.data) == m.step * m.height and m.step >= m.width * bpp, o
    assert ros.wait_for(lambda: col.got["scene/label_info"] and col.got["label_info"], 10), "label_info missing"
    scene_info = col.got["scene/label_info"][0][0]
    assert [c.class_name for c in scene_info.class_map] == LABELS
    main, scene = pixels(col.msg("semantic", key)), pixels(col.msg("scene/semantic", key))
    assert scene.max() < len(LABELS) or scene.max() == 255, "scene labels index its class names"
    assert not np.array_equal(main, scene), "the head's own map is not the main (linear) map"
    # The main map is still the linear head's: the one `dinoseg run` writes on the same message.
    offline = run_cli(node.params_path, CAM, sent, ros.tmp / "cli")
    assert np.array_equal(pixels(offline[0]), main)


def test_a_head_whose_results_go_nowhere_is_refused(ros):
    # The EoMT head gives a semantic map only, the linear head is the main one, and no topic would carry the
    # EoMT head's map (outputs.semantic and semantic_color off; the overlay shows the main map).
    off = {f"outputs.{o}": False for o in ["semantic", "semantic_color", "instances", "instance_ids"]}
    params = with_keys(demo_params(), **off)
    params["heads"]["scene"]["outputs"] = "semantic"
    node = ros.start_node(params, wait=False)
    rc = node.wait_exit(30)
    err = node.stderr()
    assert rc == 1, f"exit code {rc}:\n{err}"
    assert "heads.scene: its results go nowhere" in err, err
    assert "panicked" not in err
