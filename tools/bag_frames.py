#!/usr/bin/env python3
"""Writes the camera frames of a ROS 2 bag (MCAP) as PNG files, to label them for `dinoseg train-head`.

    bag_frames.py BAG OUT [--topic T ...] [--every N] [--max N]

Each sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16) or sensor_msgs/CompressedImage message becomes
OUT/<stamp>.png, <stamp> the header stamp in nanoseconds: the NAME that `dinoseg run` gives the same frame's
results (NAME_semantic.png, ...), so its predictions line up with the frames as pre-labels or for evaluation.
With several camera topics each gets a folder named as `dinoseg run` names them (`/front/image_raw` ->
OUT/front__image_raw/). `--every N` keeps every N-th frame of a topic (consecutive frames are near copies: label
a spread). Other encodings, and a second frame of one stamp and topic, are skipped with a count at the end; an
existing file is never overwritten.

Needs `mcap` and `mcap-ros2-support` (tools/requirements.txt), numpy and pillow.
"""

import argparse
import io
import sys
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"


def to_pil(msg, type_name):
    """The frame as a PIL image, or None for an encoding not handled."""
    if type_name == COMPRESSED:
        return Image.open(io.BytesIO(bytes(msg.data))).convert("RGB")
    enc = msg.encoding.lower()
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "mono16": 2}.get(enc)
    if channels is None:
        return None
    h, w = msg.height, msg.width
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8)[: h * msg.step].reshape(h, msg.step)
    px = rows[:, : w * channels]
    if enc == "mono16":
        order = ">u2" if msg.is_bigendian else "<u2"
        return Image.fromarray(px.copy().view(order).reshape(h, w).astype(np.uint16), mode="I;16")
    px = px.reshape(h, w, channels) if channels > 1 else px.reshape(h, w)
    if enc.startswith("bgr"):
        px = px[:, :, [2, 1, 0] + ([3] if channels == 4 else [])]
    return Image.fromarray(np.ascontiguousarray(px))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bag", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--topic", action="append", help="camera topic to export (default: every image topic)")
    ap.add_argument("--every", type=int, default=1, help="keep every N-th frame of a topic")
    ap.add_argument("--max", type=int, default=0, help="at most N frames in all (0: no limit)")
    args = ap.parse_args()
    if args.every < 1:
        sys.exit("--every must be at least 1")

    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    seen, written, skipped, done = Counter(), 0, Counter(), set()
    with open(args.bag, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        summary = reader.get_summary()
        image_topics = sorted(
            {ch.topic for ch in summary.channels.values() if summary.schemas[ch.schema_id].name in (IMAGE, COMPRESSED)}
        )
        topics = args.topic or image_topics
        missing = [t for t in topics if t not in image_topics]
        if missing:
            sys.exit(f"{args.bag}: no image topic {', '.join(missing)} (image topics: {', '.join(image_topics)})")
        for schema, channel, message, msg in reader.iter_decoded_messages(topics=topics):
            if args.max and written >= args.max:
                break
            seen[channel.topic] += 1
            if (seen[channel.topic] - 1) % args.every:
                continue
            img = to_pil(msg, schema.name)
            if img is None:
                skipped[f"{channel.topic} (encoding {msg.encoding} not handled)"] += 1
                continue
            folder = args.out / channel.topic.strip("/").replace("/", "__") if len(topics) > 1 else args.out
            folder.mkdir(parents=True, exist_ok=True)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            path = folder / f"{stamp}.png"
            if path in done:
                skipped[f"{channel.topic} (a second frame of stamp {stamp})"] += 1
                continue
            if path.exists():
                sys.exit(f"{path}: exists (an earlier export?): not overwritten")
            img.save(path)
            done.add(path)
            written += 1
    print(f"wrote {written} frames to {args.out} from {sum(seen.values())} messages of {', '.join(topics)}")
    for what, n in skipped.items():
        print(f"skipped {n} frames of {what}", file=sys.stderr)


if __name__ == "__main__":
    main()
