"""A Mask2Former head in the node (issue 12): config/mask2former_instances.yaml as shipped (its small generated
DINOv3 ConvNeXt Mask2Former) starts, publishes instances, their id image, detections and label_info for a camera
frame with the frame's header, and the instances equal, mask for mask, what `dinoseg run` computes on the same
serialized message."""

import copy

import numpy as np
import yaml

from harness import REPO, make_image, pixels, stamp_key, with_keys
from offline import run_cli

CAM = "/camera/image_raw"
CONFIG = REPO / "config" / "mask2former_instances.yaml"
OUTPUTS = ["instances", "instance_ids", "detections", "overlay"]
LABELS = ["person", "car", "road", "sky", "tree"]


def m2f_params():
    """The shipped params with an absolute checkpoint path, one worker thread, and score threshold 0 (the random
    weights give low scores: every top-k candidate with a mask is kept, so there are instances to compare)."""
    p = copy.deepcopy(yaml.safe_load(CONFIG.read_text())["dinoseg"]["ros__parameters"])
    for head in p["heads"].values():
        head["checkpoint"] = str((CONFIG.parent / head["checkpoint"]).resolve())
    p.setdefault("node", {})["threads"] = 1
    return with_keys(p, **{"thresholds.score": 0.0, "thresholds.top_k": 20})


def test_mask2former_instances_match_the_offline_run(ros):
    node = ros.start_node(m2f_params(), ready_output="instances")
    col = ros.collector(CAM, OUTPUTS + ["label_info"])
    pub = ros.publisher(CAM)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_image("rgb8", 96, 128, seed=7), col, OUTPUTS)
    assert sent is not None, "no complete set of Mask2Former outputs"
    key = stamp_key(sent.header)
    insts = col.msg("instances", key)
    assert (insts.header.frame_id, insts.header.stamp) == (sent.header.frame_id, sent.header.stamp)
    assert len(insts.instances) >= 1, "score threshold 0: the top-k candidates with a mask are instances"
    ids = pixels(col.msg("instance_ids", key))
    assert ids.shape == (sent.height, sent.width)
    for inst in insts.instances:
        assert 0 <= inst.class_id < len(LABELS) and inst.class_name == LABELS[inst.class_id]
        assert int(np.count_nonzero(ids == inst.id)) <= inst.area
    assert len(col.msg("detections", key).detections) == len(insts.instances)
    assert ros.wait_for(lambda: col.got["label_info"], 10), "label_info missing"
    assert [c.class_name for c in col.got["label_info"][0][0].class_map] == LABELS
    offline = run_cli(node.params_path, CAM, sent, ros.tmp / "cli", output="instances")
    assert len(offline) == 1 and len(offline[0].instances) == len(insts.instances)
    for a, b in zip(insts.instances, offline[0].instances):
        assert (a.id, a.class_id, a.area, a.roi) == (b.id, b.class_id, b.area, b.roi)
        assert abs(a.score - b.score) < 1e-6
        assert bytes(a.mask.data) == bytes(b.mask.data)
