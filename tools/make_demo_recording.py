#!/usr/bin/env python3
"""Writes the demo recording: held-out synthetic camera frames as a ROS 2 bag (MCAP) plus their ground truth.

Usage: make_demo_recording.py OUT_DIR [--frames 40] [--seed 1000000000] [--encoding bgr8|rgb8]
                              [--step-padding 0] [--compressed]

Writes:
  OUT_DIR/input.mcap   ROS 2 bag (MCAP, profile ros2, schemas ros2msg with dependencies appended the way rosbag2
                       writes them, messages CDR): topic /camera/image_raw, sensor_msgs/msg/Image, frame_id
                       "camera", header stamps from 1700000000 s at 10 Hz (log and publish time = stamp); with
                       --compressed also /camera/image_raw/compressed, sensor_msgs/msg/CompressedImage, "jpeg".
                       --step-padding N adds N bytes of padding to every image row (step > width * 3).
  OUT_DIR/gt/{stamp_ns}_semantic.png    mono8 class ids (0 background, 1..5 tools/demo_scenes.CLASSES)
  OUT_DIR/gt/{stamp_ns}_instances.png   uint16 instance ids (0 none, k = instance k of that frame)
  OUT_DIR/gt/instances.json             {"classes": [...], "stuff_classes": [0], "frames": [{"stamp_ns", "seed",
                                         "height", "width", "instances": [{"id", "class_id", "class",
                                         "bbox": [x, y, w, h], "area"}]}]}
  OUT_DIR/gt/coco_instances.json        the same instances as a COCO ground truth for `dinoseg eval --coco-gt`:
                                         images (id = stamp_ns, file_name "{stamp_ns}.png"), the thing classes as
                                         categories (ids 1..5), annotations with compressed RLE masks (pycocotools)
Frame i is demo_scenes.render_scene(seed + i, *demo_scenes.test_frame_size(i)): mostly 320x240, some 330x250 and
272x200 (sides that are not multiples of 16). Seeds from demo_scenes.TEST_SEED_BASE on are never used in training.
Uses the PyPI packages `mcap` and `mcap-ros2-support`, independent of dinoseg's Rust MCAP code.
"""
import argparse
import io
import json
import os
import sys
import time

import numpy as np
from PIL import Image
from pycocotools import mask as coco_mask

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import demo_scenes as ds  # noqa: E402

SEP = "=" * 80 + "\n"

TIME_MSG = """# This message communicates ROS Time, defined here:
# https://design.ros2.org/articles/clock_and_time.html

# The seconds component, valid over all int32 values.
int32 sec

# The nanoseconds component, valid in the range [0, 1e9).
uint32 nanosec
"""

HEADER_MSG = """# Standard metadata for higher-level stamped data types.
# This is generally used to communicate timestamped data
# in a particular coordinate frame.

# Two-integer timestamp that is expressed as seconds and nanoseconds.
builtin_interfaces/Time stamp

# Transform frame with which this data is associated.
string frame_id
"""

IMAGE_MSG = """# This message contains an uncompressed image
# (0, 0) is at top-left corner of image

std_msgs/Header header # Header timestamp should be acquisition time of image
                             # Header frame_id should be optical frame of camera
                             # origin of frame should be optical center of cameara
                             # +x should point to the right in the image
                             # +y should point down in the image
                             # +z should point into to plane of the image
                             # If the frame_id here and the frame_id of the CameraInfo
                             # message associated with the image conflict
                             # the behavior is undefined

uint32 height                # image height, that is, number of rows
uint32 width                 # image width, that is, number of columns

# The legal values for encoding are in file include/sensor_msgs/image_encodings.hpp
# If you want to standardize a new string format, join
# ros-users@lists.ros.org and send an email proposing a new encoding.

string encoding       # Encoding of pixels -- channel meaning, ordering, size
                      # taken from the list of strings in include/sensor_msgs/image_encodings.hpp

uint8 is_bigendian    # is this data bigendian?
uint32 step           # Full row length in bytes
uint8[] data          # actual matrix data, size is (step * rows)
"""

COMPRESSED_MSG = """# This message contains a compressed image.

std_msgs/Header header # Header timestamp should be acquisition time of image
                             # Header frame_id should be optical frame of camera
                             # origin of frame should be optical center of cameara
                             # +x should point to the right in the image
                             # +y should point down in the image
                             # +z should point into to plane of the image

string format                # Specifies the format of the data
                             #   Acceptable values:
                             #     jpeg, png, tiff

uint8[] data                 # Compressed image buffer
"""


def with_deps(text):
    """The ros2msg schema text as rosbag2 stores it: the message, then each dependency after a separator line."""
    return (text + SEP + "MSG: std_msgs/Header\n" + HEADER_MSG
            + SEP + "MSG: builtin_interfaces/Time\n" + TIME_MSG)


START_NS = 1_700_000_000 * 10**9
PERIOD_NS = 100_000_000  # 10 Hz


def frames(count, seed):
    """(stamp_ns, seed, Scene) for each frame of the recording."""
    for i in range(count):
        h, w = ds.test_frame_size(i)
        yield START_NS + i * PERIOD_NS, seed + i, ds.render_scene(seed + i, h, w)


def write_gt(gt_dir, stamp, seed, scene, index):
    Image.fromarray(scene.semantic).save(os.path.join(gt_dir, f"{stamp}_semantic.png"))
    Image.fromarray(scene.instances.astype(np.uint16)).save(os.path.join(gt_dir, f"{stamp}_instances.png"))
    inst = []
    for k, cls in scene.objects:
        ys, xs = np.nonzero(scene.instances == k)
        rle = coco_mask.encode(np.asfortranarray((scene.instances == k).astype(np.uint8)))
        inst.append({"id": int(k), "class_id": int(cls), "class": ds.CLASSES[cls],
                     "bbox": [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)],
                     "area": int(len(xs)), "rle": {"size": rle["size"], "counts": rle["counts"].decode()}})
    return {"stamp_ns": stamp, "seed": seed, "index": index, "height": scene.height, "width": scene.width,
            "instances": inst}


def write_gt_json(gt_dir, records):
    images, annotations = [], []
    for r in records:
        images.append({"id": r["stamp_ns"], "file_name": f"{r['stamp_ns']}.png", "height": r["height"],
                       "width": r["width"]})
        for inst in r["instances"]:
            annotations.append({"id": len(annotations) + 1, "image_id": r["stamp_ns"], "category_id": inst["class_id"],
                                "segmentation": inst.pop("rle"), "area": inst["area"], "bbox": inst["bbox"],
                                "iscrowd": 0})
    categories = [{"id": i, "name": n} for i, n in enumerate(ds.CLASSES) if i not in ds.STUFF]
    with open(os.path.join(gt_dir, "coco_instances.json"), "w") as f:
        json.dump({"images": images, "categories": categories, "annotations": annotations}, f)
    with open(os.path.join(gt_dir, "instances.json"), "w") as f:
        json.dump({"classes": ds.CLASSES, "stuff_classes": sorted(ds.STUFF), "frames": records}, f, indent=1)


def write_gt_only(out, count, seed):
    """Ground truth only (no bag): OUT/gt/..."""
    gt_dir = os.path.join(out, "gt")
    os.makedirs(gt_dir, exist_ok=True)
    records = [write_gt(gt_dir, stamp, s, sc, i) for i, (stamp, s, sc) in enumerate(frames(count, seed))]
    write_gt_json(gt_dir, records)
    return gt_dir


def main():
    p = argparse.ArgumentParser(description="Write the demo ROS 2 bag (MCAP) and its ground truth.")
    p.add_argument("out")
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--seed", type=int, default=ds.TEST_SEED_BASE)
    p.add_argument("--encoding", choices=["bgr8", "rgb8"], default="bgr8")
    p.add_argument("--step-padding", type=int, default=0, help="extra bytes at the end of every image row")
    p.add_argument("--compressed", action="store_true", help="also write /camera/image_raw/compressed (jpeg)")
    args = p.parse_args()
    if args.seed < ds.TEST_SEED_BASE:
        print(f"warning: seeds below {ds.TEST_SEED_BASE} are training seeds", file=sys.stderr)

    from mcap_ros2.writer import Writer

    t0 = time.time()
    gt_dir = os.path.join(args.out, "gt")
    os.makedirs(gt_dir, exist_ok=True)
    records = []
    with open(os.path.join(args.out, "input.mcap"), "wb") as f:
        writer = Writer(f)
        image_schema = writer.register_msgdef("sensor_msgs/msg/Image", with_deps(IMAGE_MSG))
        comp_schema = writer.register_msgdef("sensor_msgs/msg/CompressedImage", with_deps(COMPRESSED_MSG)) \
            if args.compressed else None
        for i, (stamp, seed, scene) in enumerate(frames(args.frames, args.seed)):
            rgb = scene.image
            pix = rgb[..., ::-1] if args.encoding == "bgr8" else rgb
            h, w = pix.shape[:2]
            step = w * 3 + args.step_padding
            rows = np.zeros((h, step), dtype=np.uint8)
            rows[:, : w * 3] = np.ascontiguousarray(pix).reshape(h, w * 3)
            header = {"stamp": {"sec": stamp // 10**9, "nanosec": stamp % 10**9}, "frame_id": "camera"}
            writer.write_message("/camera/image_raw", image_schema,
                                 {"header": header, "height": h, "width": w, "encoding": args.encoding,
                                  "is_bigendian": 0, "step": step, "data": rows.tobytes()},
                                 log_time=stamp, publish_time=stamp, sequence=i)
            if comp_schema is not None:
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, format="JPEG", quality=92)
                writer.write_message("/camera/image_raw/compressed", comp_schema,
                                     {"header": header, "format": "jpeg", "data": buf.getvalue()},
                                     log_time=stamp, publish_time=stamp, sequence=i)
            records.append(write_gt(gt_dir, stamp, seed, scene, i))
        writer.finish()
    write_gt_json(gt_dir, records)
    print(f"wrote {args.frames} frames to {os.path.join(args.out, 'input.mcap')} and {gt_dir} "
          f"in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
