"""A ROS 2 bag (MCAP) of 4K camera frames for the memory check in bench/RESULTS.md (issue 10).

Usage: .venv/bin/python tools/make_4k_bag.py OUT.mcap [--frames N]
Writes N (default 2) 2160x3840 rgb8 sensor_msgs/Image frames of random pixels on /camera/image_raw.
"""
import argparse
import os
import sys

import numpy as np
from mcap_ros2.writer import Writer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo_recording as demo  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=2)
    args = p.parse_args()
    h, w = 2160, 3840
    img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
    with open(args.out, "wb") as f:
        writer = Writer(f)
        schema = writer.register_msgdef("sensor_msgs/msg/Image", demo.with_deps(demo.IMAGE_MSG))
        for i in range(args.frames):
            t = demo.START_NS + i * demo.PERIOD_NS
            header = {"stamp": {"sec": t // 10**9, "nanosec": t % 10**9}, "frame_id": "camera"}
            writer.write_message("/camera/image_raw", schema,
                                 {"header": header, "height": h, "width": w, "encoding": "rgb8", "is_bigendian": 0,
                                  "step": w * 3, "data": img.tobytes()},
                                 log_time=t, publish_time=t, sequence=i)
        writer.finish()


if __name__ == "__main__":
    main()
