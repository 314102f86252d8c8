"""CompressedImage input (a params topic ending in `/compressed`): JPEG and PNG frames give every output with the
input's header at the image's resolution, and the same semantic map as `dinoseg run` on the same message."""

import numpy as np
import pytest

from sensor_msgs.msg import CompressedImage

from harness import DEMO_OUTPUTS, IMAGE_OUTPUTS, demo_params, make_compressed, pixels, stamp_key, with_keys
from offline import run_cli

CAM = "/camera/image_raw/compressed"


@pytest.mark.parametrize("fmt,h,w", [("jpeg", 120, 160), ("png", 120, 160), ("jpeg", 53, 77), ("png", 53, 77)])
def test_compressed_outputs_and_offline_parity(ros, fmt, h, w):
    node = ros.start_node(with_keys(demo_params(), **{"input.topics": [CAM]}))
    col = ros.collector(CAM)
    assert col.ns == "/camera/dinoseg"
    pub = ros.publisher(CAM, CompressedImage)
    assert ros.matched(pub)
    sent = ros.send_until(pub, lambda: make_compressed(fmt, h, w, seed=5), col)
    assert sent is not None, f"no complete set of outputs for a {fmt} {w}x{h} frame"
    key = stamp_key(sent.header)
    for o in DEMO_OUTPUTS:
        if o == "label_info":
            continue
        m = col.msg(o, key)
        assert m.header.frame_id == sent.header.frame_id, o
        if o in IMAGE_OUTPUTS:
            assert (m.height, m.width) == (h, w), f"{o}: {m.width}x{m.height}"
    for inst in col.msg("instances", key).instances:
        assert inst.roi.x_offset + inst.roi.width <= w and inst.roi.y_offset + inst.roi.height <= h
    offline = run_cli(node.params_path, CAM, sent, ros.tmp / "cli")
    assert len(offline) == 1
    a, b = pixels(col.msg("semantic", key)), pixels(offline[0])
    assert len(np.unique(a)) >= 2
    assert np.array_equal(a, b), f"{int((a != b).sum())} pixels differ from dinoseg run"
