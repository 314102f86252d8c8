#!/usr/bin/env python3
"""Independent ROS 2 message and bag implementations for dinoseg's interop tests (tests/messages.rs, tests/bag.rs).

Nothing here reads dinoseg's Rust code: CDR goes through `rosbags` (its own typesys and serializer; the Humble type
store plus the definitions below) and bags through `mcap` / `mcap-ros2-support` (which decodes with the schema texts
stored in the bag). Only our own interface package's files, msg/*.msg, are read from the repository: they are the
definition of record.

    ros2_interop.py decode DIR          DIR/manifest.json {name: type} + DIR/<name>.cdr -> DIR/decoded.json
    ros2_interop.py encode DIR          DIR/<name>.cdr + DIR/expected.json {name: {type, message}}
    ros2_interop.py bag-read BAG OUT    every message of BAG decoded by mcap_ros2 -> OUT (JSON list)
    ros2_interop.py bag-write BAG OUT   a camera bag written by mcap_ros2 -> BAG, its messages -> OUT (JSON list)

Messages are JSON dicts with the ROS field names; uint8[] fields are hex strings, other arrays lists.
"""

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

# vision_msgs 4.x (ros-perception/vision_msgs, ros2 branch: Humble, Jazzy), field lines only.
VISION_MSGS = {
    "vision_msgs/msg/Point2D": "float64 x\nfloat64 y\n",
    "vision_msgs/msg/Pose2D": "vision_msgs/Point2D position\nfloat64 theta\n",
    "vision_msgs/msg/BoundingBox2D": "vision_msgs/Pose2D center\nfloat64 size_x\nfloat64 size_y\n",
    "vision_msgs/msg/ObjectHypothesis": "string class_id\nfloat64 score\n",
    "vision_msgs/msg/ObjectHypothesisWithPose": (
        "vision_msgs/ObjectHypothesis hypothesis\ngeometry_msgs/PoseWithCovariance pose\n"
    ),
    "vision_msgs/msg/Detection2D": (
        "std_msgs/Header header\nvision_msgs/ObjectHypothesisWithPose[] results\n"
        "vision_msgs/BoundingBox2D bbox\nstring id\n"
    ),
    "vision_msgs/msg/Detection2DArray": "std_msgs/Header header\nvision_msgs/Detection2D[] detections\n",
    "vision_msgs/msg/VisionClass": "uint16 class_id\nstring class_name\n",
    "vision_msgs/msg/LabelInfo": "std_msgs/Header header\nvision_msgs/VisionClass[] class_map\nfloat32 threshold\n",
}

SEP = "=" * 80
# For the mcap_ros2 writer: sensor_msgs definitions written out here, fields only.
TIME = "int32 sec\nuint32 nanosec\n"
HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
DEPS = f"{SEP}\nMSG: std_msgs/Header\n{HEADER}{SEP}\nMSG: builtin_interfaces/Time\n{TIME}"
IMAGE_DEF = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\nuint32 step\n"
    "uint8[] data\n" + DEPS
)
COMPRESSED_DEF = "std_msgs/Header header\nstring format\nuint8[] data\n" + DEPS


def typestore():
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = {}
    for name, text in VISION_MSGS.items():
        types.update(get_types_from_msg(text, name))
    for path in sorted((ROOT / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"dinoseg_interfaces/msg/{path.stem}"))
    store.register(types)
    return store


def to_json(value):
    """A decoded message (rosbags dataclass or mcap_ros2 dynamic object) as JSON-able data."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, np.ndarray):
        return value.tobytes().hex() if value.dtype == np.uint8 else [to_json(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        names = [f.name for f in dataclasses.fields(value)]
    else:
        names = value.__slots__
    # Field names are lower case in ROS; upper-case names are a type's constants (DiagnosticStatus.OK, ...).
    return {name: to_json(getattr(value, name)) for name in names if not name.startswith("__") and not name.isupper()}


def cmd_decode(folder):
    store = typestore()
    manifest = json.loads((folder / "manifest.json").read_text())
    out = {}
    for name, msgtype in manifest.items():
        raw = (folder / f"{name}.cdr").read_bytes()
        msg = store.deserialize_cdr(raw, msgtype)
        again = bytes(store.serialize_cdr(msg, msgtype))
        out[name] = {"message": to_json(msg), "reencoded_equal": again == raw}
    (folder / "decoded.json").write_text(json.dumps(out, indent=1))


def build(store, msgtype, **fields):
    return store.types[msgtype](**fields)


def header(store, sec, nanosec, frame_id):
    t = build(store, "builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)
    return build(store, "std_msgs/msg/Header", stamp=t, frame_id=frame_id)


def image(store, hdr, height, width, encoding, step, data, big=0):
    data = np.frombuffer(bytes(data), dtype=np.uint8)
    return build(
        store, "sensor_msgs/msg/Image", header=hdr, height=height, width=width, encoding=encoding,
        is_bigendian=big, step=step, data=data,
    )


def png_bytes(width, height):
    import io

    from PIL import Image as PILImage

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    PILImage.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def cmd_encode(folder):
    store = typestore()
    rng = np.random.default_rng(7)
    rand = lambda n: rng.integers(0, 256, n, dtype=np.uint8).tobytes()  # noqa: E731
    h = header(store, 1700000000, 123456789, "camera_optical")
    msgs = {
        "rgb8_odd": image(store, h, 3, 5, "rgb8", 15, rand(45)),
        "bgr8_padded": image(store, header(store, 5, 7, "caméra"), 4, 6, "bgr8", 20, rand(80)),
        "mono16_be": image(store, h, 2, 3, "mono16", 6, rand(12), big=1),
        "yuv422": image(store, h, 2, 4, "yuv422", 8, rand(16)),
        "empty": image(store, header(store, 0, 0, ""), 0, 0, "", 0, b""),
        "compressed_png": build(
            store, "sensor_msgs/msg/CompressedImage", header=h, format="png",
            data=np.frombuffer(png_bytes(7, 5), dtype=np.uint8),
        ),
        "compressed_long": build(
            store, "sensor_msgs/msg/CompressedImage", header=h, format="bgr8; jpeg compressed bgr8",
            data=np.frombuffer(rand(33), dtype=np.uint8),
        ),
    }
    roi = build(store, "sensor_msgs/msg/RegionOfInterest", x_offset=2, y_offset=1, height=2, width=3, do_rectify=False)
    mask = image(store, h, 2, 3, "mono8", 3, bytes([0, 255, 255, 255, 255, 0]))
    inst = build(
        store, "dinoseg_interfaces/msg/InstanceMask", id=1, class_id=17, class_name="cat", score=0.75, area=4,
        roi=roi, mask=mask,
    )
    msgs["instances"] = build(store, "dinoseg_interfaces/msg/InstanceMaskArray", header=h, instances=[inst])
    vc = [build(store, "vision_msgs/msg/VisionClass", class_id=i, class_name=n) for i, n in [(0, "wall"), (65535, "")]]
    msgs["label_info"] = build(store, "vision_msgs/msg/LabelInfo", header=h, class_map=vc, threshold=0.5)
    point = build(store, "geometry_msgs/msg/Point", x=1.5, y=-2.0, z=0.25)
    quat = build(store, "geometry_msgs/msg/Quaternion", x=0.0, y=0.0, z=0.0, w=1.0)
    pose = build(store, "geometry_msgs/msg/Pose", position=point, orientation=quat)
    cov = np.arange(36, dtype=np.float64) / 4
    pwc = build(store, "geometry_msgs/msg/PoseWithCovariance", pose=pose, covariance=cov)
    hyp = build(store, "vision_msgs/msg/ObjectHypothesis", class_id="person", score=0.625)
    ohwp = build(store, "vision_msgs/msg/ObjectHypothesisWithPose", hypothesis=hyp, pose=pwc)
    p2 = build(store, "vision_msgs/msg/Point2D", x=10.5, y=20.25)
    bbox = build(
        store, "vision_msgs/msg/BoundingBox2D", center=build(store, "vision_msgs/msg/Pose2D", position=p2, theta=0.0),
        size_x=3.0, size_y=4.0,
    )
    det = build(store, "vision_msgs/msg/Detection2D", header=h, results=[ohwp], bbox=bbox, id="1")
    msgs["detections"] = build(store, "vision_msgs/msg/Detection2DArray", header=h, detections=[det, det])
    expected = {}
    for name, msg in msgs.items():
        (folder / f"{name}.cdr").write_bytes(bytes(store.serialize_cdr(msg, msg.__msgtype__)))
        expected[name] = {"type": msg.__msgtype__, "message": to_json(msg)}
    (folder / "expected.json").write_text(json.dumps(expected, indent=1))


def cmd_bag_read(bag, out):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    rows = []
    with open(bag, "rb") as f:
        reader = make_reader(f, decoder_factories=[DecoderFactory()])
        profile = reader.get_header().profile
        for schema, channel, message, decoded in reader.iter_decoded_messages(log_time_order=True):
            rows.append({
                "profile": profile, "topic": channel.topic, "type": schema.name, "encoding": schema.encoding,
                "message_encoding": channel.message_encoding, "log_time": message.log_time,
                "publish_time": message.publish_time, "message": to_json(decoded),
            })
    Path(out).write_text(json.dumps(rows, indent=1))


def cmd_bag_write(bag, out):
    from mcap_ros2.writer import Writer

    rng = np.random.default_rng(11)
    rand = lambda n: rng.integers(0, 256, n, dtype=np.uint8).tobytes()  # noqa: E731
    frames = [  # (height, width, encoding, step, data length, is_bigendian)
        (3, 5, "rgb8", 15, 45, 0),
        (4, 6, "bgr8", 20, 80, 0),  # 2 bytes of row padding
        (5, 7, "mono8", 8, 40, 0),
        (2, 3, "mono16", 6, 12, 1),
        (2, 4, "yuv422", 8, 16, 0),
        (4, 4, "bayer_rggb8", 4, 16, 0),
        (3, 5, "rgba8", 20, 60, 0),
        (4, 4, "rgb8", 12, 40, 0),  # malformed: data shorter than step * height (48)
    ]
    rows = []
    with open(bag, "wb") as f:
        writer = Writer(f)
        image_schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_DEF)
        compressed_schema = writer.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_DEF)
        # Written out of log-time order on purpose: readers must sort.
        times = [1000, 3000, 2000, 4000, 6000, 5000, 7000, 8000]
        for i, ((height, width, encoding, step, n, big), t) in enumerate(zip(frames, times)):
            msg = {
                "header": {"stamp": {"sec": 100 + i, "nanosec": i * 1000}, "frame_id": "cam"},
                "height": height, "width": width, "encoding": encoding, "is_bigendian": big, "step": step,
                "data": rand(n),
            }
            writer.write_message("/camera/image_raw", image_schema, msg, log_time=t, publish_time=t - 1)
            rows.append({"topic": "/camera/image_raw", "type": "sensor_msgs/msg/Image", "log_time": t,
                         "publish_time": t - 1, "message": to_json(msg)})
        for j, (fmt, data) in enumerate([("png", png_bytes(6, 4)), ("jpeg", rand(20))]):
            t = 1500 + j * 4000
            msg = {"header": {"stamp": {"sec": 200 + j, "nanosec": 5}, "frame_id": "cam"}, "format": fmt, "data": data}
            writer.write_message("/camera/image_raw/compressed", compressed_schema, msg, log_time=t, publish_time=t)
            rows.append({"topic": "/camera/image_raw/compressed", "type": "sensor_msgs/msg/CompressedImage",
                         "log_time": t, "publish_time": t, "message": to_json(msg)})
        writer.finish()
    rows.sort(key=lambda r: r["log_time"])
    Path(out).write_text(json.dumps(rows, indent=1))


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "decode":
        cmd_decode(Path(argv[2]))
    elif cmd == "encode":
        cmd_encode(Path(argv[2]))
    elif cmd == "bag-read":
        cmd_bag_read(argv[2], argv[3])
    elif cmd == "bag-write":
        cmd_bag_write(argv[2], argv[3])
    else:
        sys.exit(f"unknown command {cmd}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
