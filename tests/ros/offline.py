"""The offline side of the parity checks: the same serialized camera message through `dinoseg run`.

`write_bag` writes a one-message MCAP bag as rosbag2 would (profile `ros2`, schema encoding `ros2msg` with the
.msg text of src/messages/defs and its dependencies, message encoding `cdr`, rclpy's serialization);
`run_cli` runs `dinoseg run --params P --input one_frame.mcap --output out.mcap` and decodes one output topic
of the result with rclpy. dinoseg writes zstd chunks, which mcap's reader
decompresses with `zstandard` (tools/ros/requirements.txt).
"""

import os
import subprocess

from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CompressedImage

from harness import CLI_BIN, OUTPUT_TYPES, REPO, output_ns

PRIMITIVES = set(
    "bool byte char float32 float64 int8 uint8 int16 uint16 int32 uint32 int64 uint64 string wstring".split()
)
DEFS = REPO / "src" / "messages" / "defs"


def schema_text(type_name):
    """The ros2msg schema of `pkg/msg/Type` as rosbag2 writes it: the .msg text, then each nested type's."""
    pkg, _, ty = type_name.split("/")
    out, seen = [], set()

    def append(pkg, ty):
        text = (DEFS / pkg / f"{ty}.msg").read_text()
        out.append(text)
        for line in text.splitlines():
            words = line.split("#")[0].split()
            if len(words) < 2:
                continue
            base = words[0].split("[")[0]
            if base in PRIMITIVES or base.startswith("string<"):
                continue
            dep = base if "/" in base else f"{pkg}/{base}"
            if dep not in seen:
                seen.add(dep)
                out.append("\n" + "=" * 80 + f"\nMSG: {dep}\n")
                append(*dep.split("/"))

    append(pkg, ty)
    return "".join(out)


def write_bag(path, topic, msg):
    """A one-message MCAP bag (profile ros2, ros2msg schema, cdr) of `msg` serialized as rclpy does."""
    from mcap.writer import CompressionType, Writer

    type_name = "sensor_msgs/msg/CompressedImage" if isinstance(msg, CompressedImage) else "sensor_msgs/msg/Image"
    with open(path, "wb") as f:
        w = Writer(f, compression=CompressionType.NONE)
        w.start(profile="ros2", library="dinoseg tests/ros")
        sid = w.register_schema(type_name, "ros2msg", schema_text(type_name).encode())
        cid = w.register_channel(topic, "cdr", sid, {"offered_qos_profiles": ""})
        t = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        w.add_message(cid, log_time=t, data=serialize_message(msg), publish_time=t, sequence=0)
        w.finish()


def run_cli(params_path, topic, msg, workdir, output="semantic"):
    """`dinoseg run --params P --input one_frame.mcap --output out.mcap` on `msg`: the `output` messages."""
    from mcap.reader import make_reader

    assert CLI_BIN.exists(), f"{CLI_BIN} is missing: make build"
    workdir.mkdir(exist_ok=True)
    bag_in, bag_out = workdir / "one_frame.mcap", workdir / "out.mcap"
    write_bag(bag_in, topic, msg)
    r = subprocess.run(
        [str(CLI_BIN), "run", "--params", str(params_path), "--input", str(bag_in), "--output", str(bag_out)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    assert r.returncode == 0, f"dinoseg run failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    want = f"{output_ns(topic)}/{output}"
    with open(bag_out, "rb") as f:
        records = [m.data for _, ch, m in make_reader(f).iter_messages() if ch.topic == want]
    return [deserialize_message(data, OUTPUT_TYPES[output]) for data in records]
