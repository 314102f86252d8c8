#!/usr/bin/env python3
"""Writes the seed corpus of dinoseg's fuzz targets: fuzz/corpus/<target>/, small valid inputs of each format.

    .venv/bin/python tools/fuzz_seeds.py            (re)writes every seed

The input layouts are those of fuzz/src/harness.rs (a selector byte before a CDR buffer, flags before a frame, ...);
tests/mutation.rs checks that every seed is still accepted by the parser it seeds. CDR is written by hand here
(OMG CDR little-endian, alignment counted after the 4-byte encapsulation header); the rest with the reference
libraries: torch.save, safetensors, mcap, Pillow, pycocotools. Keep the total small (< 200 KiB). Re-running may reorder
the metadata keys of the safetensors seeds (safetensors writes them from a hash map); nothing else changes.
"""

import io
import json
import shutil
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"

# The order of harness::CDR_TYPES.
CDR_TYPES = [
    "sensor_msgs/msg/Image",
    "sensor_msgs/msg/CompressedImage",
    "sensor_msgs/msg/RegionOfInterest",
    "std_msgs/msg/Header",
    "builtin_interfaces/msg/Time",
    "diagnostic_msgs/msg/KeyValue",
    "diagnostic_msgs/msg/DiagnosticStatus",
    "diagnostic_msgs/msg/DiagnosticArray",
    "geometry_msgs/msg/Point",
    "geometry_msgs/msg/Quaternion",
    "geometry_msgs/msg/Pose",
    "geometry_msgs/msg/PoseWithCovariance",
    "vision_msgs/msg/Point2D",
    "vision_msgs/msg/Pose2D",
    "vision_msgs/msg/BoundingBox2D",
    "vision_msgs/msg/ObjectHypothesis",
    "vision_msgs/msg/ObjectHypothesisWithPose",
    "vision_msgs/msg/Detection2D",
    "vision_msgs/msg/Detection2DArray",
    "vision_msgs/msg/VisionClass",
    "vision_msgs/msg/LabelInfo",
    "dinoseg_interfaces/msg/InstanceMask",
    "dinoseg_interfaces/msg/InstanceMaskArray",
]
# The order of the fuzz harness's encoding_name (Encoding::NAMES, then an odd spelling and an unknown one), with
# bytes per pixel.
ENCODINGS = [
    ("rgb8", 3), ("bgr8", 3), ("rgba8", 4), ("bgra8", 4), ("mono8", 1), ("mono16", 2), ("yuv422", 2), ("uyvy", 2),
    ("yuv422_yuy2", 2), ("yuyv", 2), ("yuy2", 2), ("bayer_rggb8", 1), ("bayer_bggr8", 1), ("bayer_gbrg8", 1),
    ("bayer_grbg8", 1), (" RGB8 ", 3),
]
# harness::FORMATS
FORMATS = ["jpeg", "png", "bgr8; jpeg compressed bgr8", "rgb8; compressed png", "", "16UC1; compressedDepth png", "bmp"]


class Cdr:
    """A CDR little-endian writer (encapsulation 00 01 00 00)."""

    def __init__(self):
        self.buf = bytearray()

    def align(self, n):
        self.buf += b"\0" * (-len(self.buf) % n)

    def put(self, fmt, v):
        size = struct.calcsize("<" + fmt)
        self.align(size)
        self.buf += struct.pack("<" + fmt, v)
        return self

    def string(self, s):
        b = s.encode() + b"\0"
        self.put("I", len(b))
        self.buf += b
        return self

    def bytes(self, b):
        self.put("I", len(b))
        self.buf += b
        return self

    def finish(self):
        return b"\x00\x01\x00\x00" + bytes(self.buf)


def time(w, sec=1700000000, nsec=123):
    w.put("i", sec).put("I", nsec)


def header(w, frame="camera"):
    time(w)
    w.string(frame)


def image(w, width=4, height=3, encoding="rgb8", bpp=3):
    header(w)
    w.put("I", height).put("I", width).string(encoding).put("B", 0).put("I", width * bpp)
    w.bytes(bytes((i * 37) % 256 for i in range(width * height * bpp)))


def roi(w):
    w.put("I", 1).put("I", 2).put("I", 3).put("I", 4).put("B", 0)


def point(w):
    w.put("d", 1.5).put("d", -2.0).put("d", 0.25)


def quaternion(w):
    w.put("d", 0.0).put("d", 0.0).put("d", 0.0).put("d", 1.0)


def pose_cov(w):
    point(w)
    quaternion(w)
    for i in range(36):
        w.put("d", float(i == 0))


def pose2d(w):
    w.put("d", 3.0).put("d", 4.0).put("d", 0.5)


def bbox(w):
    pose2d(w)
    w.put("d", 2.0).put("d", 6.0)


def hypothesis(w):
    w.string("7").put("d", 0.9)


def detection(w):
    header(w)
    w.put("I", 1)
    hypothesis(w)
    pose_cov(w)
    bbox(w)
    w.string("det-1")


def key_value(w):
    w.string("frames").string("12")


def status(w):
    w.put("B", 1).string("dinoseg: camera").string("ok").string("cpu").put("I", 2)
    key_value(w)
    key_value(w)


def instance(w):
    w.put("I", 1).put("I", 3).string("square").put("f", 0.75).put("I", 6)
    roi(w)
    image(w, 3, 2, "mono8", 1)


def cdr_messages():
    """Type name -> list of CDR buffers."""
    seeds = {}

    def add(name, *fills):
        w = Cdr()
        for fill in fills:
            fill(w)
        seeds.setdefault(name, []).append(w.finish())

    add("sensor_msgs/msg/Image", image)
    add("sensor_msgs/msg/Image", lambda w: image(w, 4, 2, "yuv422", 2))
    add("sensor_msgs/msg/CompressedImage", header, lambda w: w.string("png"), lambda w: w.bytes(png_bytes()))
    add("sensor_msgs/msg/RegionOfInterest", roi)
    add("std_msgs/msg/Header", header)
    add("builtin_interfaces/msg/Time", time)
    add("diagnostic_msgs/msg/KeyValue", key_value)
    add("diagnostic_msgs/msg/DiagnosticStatus", status)
    add("diagnostic_msgs/msg/DiagnosticArray", header, lambda w: w.put("I", 1), status)
    add("geometry_msgs/msg/Point", point)
    add("geometry_msgs/msg/Quaternion", quaternion)
    add("geometry_msgs/msg/Pose", point, quaternion)
    add("geometry_msgs/msg/PoseWithCovariance", pose_cov)
    add("vision_msgs/msg/Point2D", lambda w: w.put("d", 1.0).put("d", 2.0))
    add("vision_msgs/msg/Pose2D", pose2d)
    add("vision_msgs/msg/BoundingBox2D", bbox)
    add("vision_msgs/msg/ObjectHypothesis", hypothesis)
    add("vision_msgs/msg/ObjectHypothesisWithPose", hypothesis, pose_cov)
    add("vision_msgs/msg/Detection2D", detection)
    add("vision_msgs/msg/Detection2DArray", header, lambda w: w.put("I", 2), detection, detection)
    add("vision_msgs/msg/VisionClass", lambda w: w.put("H", 4).string("star"))
    add(
        "vision_msgs/msg/LabelInfo",
        header,
        lambda w: w.put("I", 2).put("H", 0).string("background").put("H", 1).string("disk"),
        lambda w: w.put("f", 0.5),
    )
    add("dinoseg_interfaces/msg/InstanceMask", instance)
    add("dinoseg_interfaces/msg/InstanceMaskArray", header, lambda w: w.put("I", 2), instance, instance)
    return seeds


def pil_bytes(fmt, mode="RGB", size=(4, 3), **kw):
    from PIL import Image

    img = Image.new(mode, size)
    img.putdata([((x * 60) % 256, (y * 80) % 256, 128)[: len(mode)] if mode != "L" else (x * 60) % 256
                 for y in range(size[1]) for x in range(size[0])])
    out = io.BytesIO()
    img.save(out, fmt, **kw)
    return out.getvalue()


def png_bytes():
    return pil_bytes("PNG")


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def label_png(mode, rows):
    """A greyscale label PNG (8-bit `L` or 16-bit `I;16`) of class ids."""
    import numpy as np
    from PIL import Image

    arr = np.array(rows, dtype=np.uint8 if mode == "L" else np.uint16)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def mcap_bag(compression, chunked=True, compressed_images=False):
    from mcap.writer import CompressionType, Writer

    sys.path.insert(0, str(ROOT / "tools"))
    from ros2_interop import COMPRESSED_DEF, IMAGE_DEF

    out = io.BytesIO()
    w = Writer(out, compression=getattr(CompressionType, compression), use_chunking=chunked)
    w.start(profile="ros2", library="fuzz_seeds")
    if compressed_images:
        schema = w.register_schema("sensor_msgs/msg/CompressedImage", "ros2msg", COMPRESSED_DEF.encode())
        topic = "/camera/image_raw/compressed"
    else:
        schema = w.register_schema("sensor_msgs/msg/Image", "ros2msg", IMAGE_DEF.encode())
        topic = "/camera/image_raw"
    channel = w.register_channel(topic, "cdr", schema)
    for i in range(2):
        c = Cdr()
        if compressed_images:
            header(c)
            c.string("png").bytes(png_bytes())
        else:
            image(c, 4, 2, "bgr8", 3)
        w.add_message(channel, log_time=1000 + i, data=c.finish(), publish_time=1000 + i, sequence=i)
    w.finish()
    return out.getvalue()


def safetensors_bytes(tensors, metadata=None):
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


def coco_mask(h, w, boxes):
    """A compressed COCO RLE string (pycocotools) of an h x w mask with the given (y0, y1, x0, x1) boxes set."""
    import numpy as np
    from pycocotools import mask as M

    m = np.zeros((h, w), np.uint8, order="F")
    for (y0, y1, x0, x1) in boxes:
        m[y0:y1, x0:x1] = 1
    return M.encode(np.asfortranarray(m))["counts"].decode()


def coco_seeds():
    """coco_json (a length-prefixed ground truth, then results) and coco_rle (form byte, height, width, body)."""
    from pycocotools import mask as M

    enc = coco_mask

    gt = {"images": [{"id": 1, "height": 6, "width": 8}, {"id": 2, "height": 5, "width": 5}],
          "categories": [{"id": 1}, {"id": 2}],
          "annotations": [
              {"id": 1, "image_id": 1, "category_id": 1, "area": 9.0, "iscrowd": 0,
               "segmentation": [[1.0, 1.0, 4.5, 1.2, 4.0, 4.0], [5, 5, 7, 5, 7, 6]]},
              {"id": 2, "image_id": 1, "category_id": 2, "area": 6.0, "iscrowd": 1,
               "segmentation": {"size": [6, 8], "counts": [20, 3, 3, 3, 19]}},
              {"id": 3, "image_id": 2, "category_id": 1, "area": 4.0, "iscrowd": 0,
               "segmentation": {"size": [5, 5], "counts": enc(5, 5, [(1, 3, 1, 3)])}}]}
    res = [{"image_id": 1, "category_id": 1, "score": 0.9,
            "segmentation": {"size": [6, 8], "counts": enc(6, 8, [(1, 4, 1, 5), (5, 6, 5, 7)])}},
           {"image_id": 1, "category_id": 2, "score": 0.5, "segmentation": {"size": [6, 8], "counts": [21, 2, 25]}},
           {"image_id": 2, "category_id": 1, "score": 0.5,
            "segmentation": {"size": [5, 5], "counts": enc(5, 5, [(1, 4, 1, 3)])}}]
    # The strings must be masks pycocotools reads.
    for r in (gt["annotations"][2]["segmentation"], res[0]["segmentation"]):
        assert int(M.area({"size": r["size"], "counts": r["counts"].encode()})) > 0
    g = json.dumps(gt).encode()
    write("coco_json", "polygons_rle_crowd.bin", struct.pack("<H", len(g)) + g + json.dumps(res).encode())
    res_box = [dict(r, bbox=[1, 1, 3, 3]) for r in res]
    write("coco_json", "results_with_bbox.bin", struct.pack("<H", len(g)) + g + json.dumps(res_box).encode())
    # `dinoseg run`'s results: an image_id the ground truth lacks, paired by the file name's stem.
    # Categories by name: the run's class names, ids of its own.
    named = dict(gt, images=[dict(im, file_name=f"{im['id']:06d}.jpg") for im in gt["images"]],
                 categories=[{"id": 1, "name": "person"}, {"id": 2, "name": "car"}])
    g = json.dumps(named).encode()
    res_named = [dict(r, image_id=100 + i, file_name=f"{r['image_id']:06d}", category_id=r["category_id"] - 1,
                      category_name=["person", "car"][r["category_id"] - 1]) for i, r in enumerate(res)]
    write("coco_json", "results_by_file_name.bin", struct.pack("<H", len(g)) + g + json.dumps(res_named).encode())
    rle = M.frPyObjects([[0.5, 0.5, 8.2, 1.1, 4.4, 9.9]], 10, 12)[0]
    write("coco_rle", "compressed.bin", bytes([0]) + struct.pack("<HH", 10, 12) + rle["counts"])
    poly = [2, 2, 30, 4, 20, 36, -8, 18]  # quarter pixels
    write("coco_rle", "polygon.bin", bytes([1]) + struct.pack("<HH", 12, 10) + struct.pack(f"<{len(poly)}h", *poly))
    write("coco_rle", "counts.bin", bytes([2]) + struct.pack("<HH", 3, 4) + struct.pack("<4H", 2, 5, 1, 4))


def eval_seeds():
    """`dinoseg eval`: panoptic JSONs, label PNGs, and a ground truth with its RGB id PNG."""
    from PIL import Image

    import numpy as np

    cats = [{"id": 1, "name": "person", "isthing": 1}, {"id": 7, "name": "road", "isthing": 0}]
    segs = [{"id": 1, "category_id": 7, "area": 8, "iscrowd": 0}, {"id": 70000, "category_id": 1, "area": 4},
            {"id": 513, "category_id": 1, "area": 3, "iscrowd": 1}]
    gt = {"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segs},
                          {"image_id": "b", "file_name": "b.png", "segments_info": []}], "categories": cats}
    write("eval_panoptic_json", "gt.bin", b"\x00" + json.dumps(gt).encode())
    pred = {"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": segs[:2]}]}
    write("eval_panoptic_json", "pred.bin", b"\x01" + json.dumps(pred).encode())
    named = {"annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
        {"id": 1, "category_id": 0}, {"id": 2, "category_id": 5}, {"id": 3, "category_id": 1}]}],
        "categories": [{"id": 0, "name": "floor"}, {"id": 1, "name": "person"}, {"id": 5, "name": "sky"}]}
    write("eval_panoptic_json", "pred_named.bin", b"\x01" + json.dumps(named).encode())

    def png(arr, mode=None, palette=False):
        img = Image.fromarray(arr) if mode is None else Image.fromarray(arr, mode=mode)
        if palette:
            img.putpalette([i % 256 for i in range(48)])
        out = io.BytesIO()
        img.save(out, "PNG", bits=4) if palette else img.save(out, "PNG")
        return out.getvalue()

    labels = (np.arange(12).reshape(3, 4) % 5).astype(np.uint8)
    write("eval_panoptic_json", "labels_grey8.bin", b"\x02" + png(labels))
    write("eval_panoptic_json", "labels_grey16.bin", b"\x02" + png((labels.astype(np.uint16) * 300)))
    write("eval_panoptic_json", "labels_palette4.bin", b"\x02" + png(labels, mode="P", palette=True))
    ids = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 70000], [70000, 70000, 70000, 513, 513], [0, 0, 0, 513, 0]])
    rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)
    gt1 = json.dumps({"annotations": gt["annotations"][:1], "categories": cats}).encode()
    body = len(gt1).to_bytes(2, "little") + gt1 + png(rgb)
    write("eval_panoptic_json", "gt_with_png.bin", b"\x03" + body)


def main():
    import torch

    shutil.rmtree(CORPUS, ignore_errors=True)
    for name, bufs in cdr_messages().items():
        idx = CDR_TYPES.index(name)
        for i, buf in enumerate(bufs):
            write("cdr_messages", f"{idx:02d}_{name.split('/')[-1]}_{i}.bin", bytes([idx]) + buf)

    for idx, (enc, bpp) in enumerate(ENCODINGS):
        w, h = 4, 3
        data = bytes((i * 29 + 7) % 256 for i in range(w * h * bpp))
        write("image_decode", f"{idx:02d}_{enc.strip().lower()}.bin", bytes([idx, 0, w, h, 0]) + data)
    c = Cdr()
    image(c)
    write("image_decode", "cdr_image.bin", bytes([0, 0x80]) + c.finish())
    write("image_decode", "mono16_big_endian_raw_step.bin",
          bytes([5, 0x07]) + struct.pack("<III", 2, 2, 6) + bytes(range(12)))

    write("compressed", "png.bin", bytes([1]) + png_bytes())
    write("compressed", "jpeg.bin", bytes([0]) + pil_bytes("JPEG", quality=90))
    write("compressed", "grey_png_as_jpeg_hint.bin", bytes([0]) + pil_bytes("PNG", "L"))
    write("compressed", "bgr8_jpeg.bin", bytes([2]) + pil_bytes("JPEG", size=(8, 8)))
    for fmt, ext in [("BMP", "bmp"), ("TIFF", "tiff"), ("WEBP", "webp"), ("PPM", "ppm"), ("PNG", "png")]:
        write("compressed", f"file_{ext}.bin", bytes([0x40]) + pil_bytes(fmt))
    write("compressed", "file_pgm.bin", bytes([0x40]) + pil_bytes("PPM", "L"))
    c = Cdr()
    header(c)
    c.string("jpeg").bytes(pil_bytes("JPEG"))
    write("compressed", "cdr_compressed_image.bin", bytes([0x80]) + c.finish())

    write("mcap", "zstd_chunks.mcap", mcap_bag("ZSTD"))
    write("mcap", "lz4_chunks.mcap", mcap_bag("LZ4"))
    write("mcap", "plain_chunks_compressed_images.mcap", mcap_bag("NONE", compressed_images=True))
    write("mcap", "no_chunks.mcap", mcap_bag("NONE", chunked=False))
    bag = mcap_bag("NONE")
    write("mcap", "cut_off.mcap", bag[: len(bag) * 2 // 3])

    for p in sorted((ROOT / "config").glob("*.yaml")):
        write("params_yaml", p.name, p.read_bytes())

    torch.manual_seed(0)
    write("safetensors_header", "dtypes.safetensors", safetensors_bytes({
        "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "f16": torch.ones(2, dtype=torch.float16),
        "bf16": torch.ones(2, dtype=torch.bfloat16),
        "i64": torch.arange(3, dtype=torch.int64),
        "u8": torch.arange(4, dtype=torch.uint8),
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 3),
    }, {"format": "pt"}))
    write("safetensors_header", "backbone_names.safetensors", safetensors_bytes({
        "embeddings.cls_token": torch.zeros(1, 1, 8),
        "layer.0.norm1.weight": torch.ones(8),
    }))

    write("index_json", "one_shard.json", json.dumps(
        {"metadata": {"total_size": 8}, "weight_map": {"x": "model-00001-of-00002.safetensors"}}).encode())
    write("index_json", "second_shard.json", json.dumps(
        {"weight_map": {"x": "model-00002-of-00002.safetensors"}}, indent=2).encode())

    for p in ["backbone", "eomt", "mask2former"]:
        write("model_config", f"demo_{p}.json", (ROOT / "config" / "demo" / p / "config.json").read_bytes())
    write("model_config", "convnext.json", json.dumps({
        "model_type": "dinov3_convnext", "hidden_sizes": [8, 16, 32, 64], "depths": [1, 1, 1, 1],
        "image_size": 64, "layer_norm_eps": 1e-6}).encode())
    # Mask2Former with a DINOv3 ViT backbone_config (the adapter layout's architecture is in its weights).
    write("model_config", "mask2former_vit.json", json.dumps({
        "model_type": "mask2former", "feature_size": 64, "mask_feature_size": 64, "hidden_dim": 64,
        "num_attention_heads": 4, "decoder_layers": 4, "num_queries": 10, "id2label": {"0": "a", "1": "b"},
        "backbone_config": {"model_type": "dinov3_vit", "hidden_size": 64, "num_attention_heads": 4,
                            "intermediate_size": 128, "num_hidden_layers": 4, "out_indices": [1, 2, 3, 4]}}).encode())
    # The same read as a DINOv3-Mask2former dinov3_backbone_config.json (names the variant file).
    named_variant = {"model_file": "models/mask2former_dinov3_vitsmallplus_pyramid.py", **json.loads(
        (CORPUS / "model_config" / "mask2former_vit.json").read_text())}
    write("model_config", "mask2former_adapter_names.json", json.dumps(named_variant, indent=1).encode())

    def pth(obj):
        out = io.BytesIO()
        torch.save(obj, out)
        return out.getvalue()

    state = {"w": torch.arange(4, dtype=torch.float32), "b": torch.zeros(2, 2, dtype=torch.int64),
             "h": torch.ones(3, dtype=torch.float16)}
    write("pth_pickle", "state_dict.pth", pth(state))
    write("pth_pickle", "wrapped_teacher.pth", pth({"teacher": {"backbone.w": torch.ones(2, 2).t()}, "epoch": 3}))
    write("pth_pickle", "shared_storage.pth", pth({"a": (s := torch.arange(8.0))[:4], "b": s[4:]}))

    classes = ["background", "disk", "square"]
    head = {"conv.weight": torch.randn(3, 4, 1, 1), "conv.bias": torch.zeros(3), "bn.weight": torch.ones(4),
            "bn.bias": torch.zeros(4), "bn.running_mean": torch.zeros(4), "bn.running_var": torch.ones(4)}
    meta = {"dinoseg.head": "linear", "dinoseg.layers": "last", "dinoseg.classes": json.dumps(classes),
            "dinoseg.bn_eps": "1e-05", "dinoseg.backbone": "custom"}
    sidecar = json.dumps({"head": "linear", "layers": "4", "classes": classes}).encode()

    def head_input(flags, side, ckpt):
        return bytes([flags]) + struct.pack("<H", len(side)) + side + ckpt

    write("linear_head_meta", "embedded.bin", head_input(0, b"", safetensors_bytes(head, meta)))
    write("linear_head_meta", "sidecar.bin", head_input(1, sidecar, safetensors_bytes(head)))
    # The official layout: the head module of a Sequential(backbone, head), BatchNorm then 1x1 conv.
    official = {}
    for k, t in head.items():
        module, param = k.split(".")
        official[f"module.segmentation_model.1.{'conv' if module == 'conv' else 'batchnorm_layer'}.{param}"] = t
    write("linear_head_meta", "official_pth_sidecar.bin", head_input(3, sidecar, pth({"model": official})))

    write("labels", "demo_labels.bin", bytes([0]) + (ROOT / "config" / "demo" / "labels.txt").read_bytes())
    write("labels", "ids_and_markers.bin", b"\x00# comment\nperson\n5: car [thing]\n80: sky [stuff]\n")
    write("labels", "config_id2label.bin", b"\x01" + json.dumps({"id2label": {"0": "road", "3": "tree"}}).encode())
    coco_seeds()

    eval_seeds()
    write("label_png", "grey8.png", label_png("L", [[0, 1, 2, 255], [2, 1, 0, 255]]))
    write("label_png", "grey16.png", label_png("I;16", [[0, 300, 2, 255], [65535, 1, 0, 7]]))

    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    print(f"wrote {sum(1 for p in CORPUS.rglob('*') if p.is_file())} seeds, {total} bytes, under {CORPUS}")
    if total > 200 * 1024:
        sys.exit("seed corpus over 200 KiB")


if __name__ == "__main__":
    main()
