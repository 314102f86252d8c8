"""Camera frames for the end-to-end tests, without ROS: synthetic scenes and the encoders a camera driver would use.

* `scene(h, w, seed)`: an RGB frame like the demo model's training scenes (bright shapes on a darker textured
  background), so the model finds objects in it.
* `encode_raw(rgb, encoding, step)`: the `data`/`step` of a `sensor_msgs/Image` in rgb8, bgr8, mono8, yuv422
  (UYVY, BT.601 limited range as cv_bridge), bayer_rggb8 (mosaic); row padding is filled with 0xAB.
* `encode_png(rgb)` (zlib) and `encode_jpeg(rgb)` (a small baseline JPEG encoder: flat quantisation, our own
  canonical Huffman tables): no imaging library is installed in .rosvenv.
* `corrupt_jpeg()`: a JPEG start marker followed by garbage.
"""

import struct
import zlib

import numpy as np

BYTES_PER_PIXEL = {"rgb8": 3, "bgr8": 3, "mono8": 1, "yuv422": 2, "bayer_rggb8": 1}


def scene(h, w, seed=0):
    """A textured dark background with a bright disk and a bright square (uint8, h x w x 3)."""
    rng = np.random.default_rng(seed)
    img = rng.integers(20, 70, size=(h, w, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    r = 0.22 * min(h, w)
    cy, cx = 0.5 * h, 0.3 * w
    disk = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    img[disk] = np.array([230, 200, 60]) + rng.integers(-15, 15, size=(int(disk.sum()), 3))
    s = int(0.35 * min(h, w))
    y0, x0 = int(0.3 * h), int(0.6 * w)
    size = (min(s, h - y0), min(s, w - x0), 3)
    img[y0 : y0 + s, x0 : x0 + s] = np.array([80, 210, 240]) + rng.integers(-15, 15, size=size)
    return np.clip(img, 0, 255).astype(np.uint8)


def _pad_rows(rows, step):
    """`rows` (h x row_bytes uint8) into h x step bytes, padding filled with 0xAB."""
    h, row_bytes = rows.shape
    if step is None or step == row_bytes:
        return rows.tobytes(), row_bytes
    out = np.full((h, step), 0xAB, dtype=np.uint8)
    out[:, : min(row_bytes, step)] = rows[:, :step]
    return out.tobytes(), step


def _uyvy(rgb):
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    u2 = (u[:, 0::2] + u[:, 1::2]) / 2
    v2 = (v[:, 0::2] + v[:, 1::2]) / 2
    h, w = y.shape
    out = np.empty((h, w * 2), dtype=np.float64)
    out[:, 0::4], out[:, 1::4], out[:, 2::4], out[:, 3::4] = u2, y[:, 0::2], v2, y[:, 1::2]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def _bayer_rggb(rgb):
    h, w, _ = rgb.shape
    out = np.empty((h, w), dtype=np.uint8)
    out[0::2, 0::2] = rgb[0::2, 0::2, 0]
    out[0::2, 1::2] = rgb[0::2, 1::2, 1]
    out[1::2, 0::2] = rgb[1::2, 0::2, 1]
    out[1::2, 1::2] = rgb[1::2, 1::2, 2]
    return out


def to_rows(rgb, encoding):
    """The unpadded rows (h x width*bpp uint8) of `rgb` in `encoding`."""
    h, w, _ = rgb.shape
    if encoding == "rgb8":
        return rgb.reshape(h, w * 3)
    if encoding == "bgr8":
        return rgb[..., ::-1].reshape(h, w * 3)
    if encoding == "mono8":
        f = rgb.astype(np.float64)
        return np.clip(np.rint(0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]), 0, 255).astype(np.uint8)
    if encoding == "yuv422":
        return _uyvy(rgb)
    if encoding == "bayer_rggb8":
        return _bayer_rggb(rgb)
    raise ValueError(f"no encoder for {encoding}")


def encode_raw(rgb, encoding, step=None):
    """(data bytes, step) of `rgb` in `encoding`; `step` above width*bpp pads each row."""
    return _pad_rows(np.ascontiguousarray(to_rows(rgb, encoding)), step)


# PNG ---------------------------------------------------------------------------------------------------------


def _png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def encode_png(rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunks = _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(raw)) + _png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks


# JPEG (baseline, 4:4:4) --------------------------------------------------------------------------------------

# JPEG's zigzag: along anti-diagonals, odd ones downwards (row ascending), even ones upwards (column ascending).
_ZIGZAG = sorted(
    ((y, x) for y in range(8) for x in range(8)), key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1])
)
_ZZ = np.array([y * 8 + x for y, x in _ZIGZAG])
# The orthonormal 8-point DCT-II (JPEG's FDCT is this in both directions).
_DCT = np.array(
    [[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)] for k in range(8)]
)
_Q = 2  # flat quantisation: every coefficient fits baseline's 10/11-bit categories


def _canonical(symbols, length):
    """A canonical Huffman table giving every symbol a code of `length` bits: (DHT counts, {symbol: (code, len)})."""
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    return counts, {s: (i, length) for i, s in enumerate(symbols)}


_DC_SYMS = list(range(12))
_AC_SYMS = [0x00, 0xF0] + [(run << 4) | size for run in range(16) for size in range(1, 11)]
_DC_COUNTS, _DC_CODES = _canonical(_DC_SYMS, 4)
_AC_COUNTS, _AC_CODES = _canonical(_AC_SYMS, 8)


class _Bits:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, code, length):
        self.acc = (self.acc << length) | (code & ((1 << length) - 1))
        self.n += length
        while self.n >= 8:
            self.n -= 8
            byte = (self.acc >> self.n) & 0xFF
            self.out.append(byte)
            if byte == 0xFF:
                self.out.append(0)

    def flush(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)
        return bytes(self.out)


def _category(v):
    v = abs(int(v))
    return v.bit_length()


def _amplitude(v, size):
    v = int(v)
    return v if v >= 0 else v + (1 << size) - 1


def _encode_block(bits, coefs, prev_dc):
    dc = int(coefs[0])
    diff = dc - prev_dc
    s = _category(diff)
    bits.put(*_DC_CODES[s])
    if s:
        bits.put(_amplitude(diff, s), s)
    run = 0
    for v in coefs[1:]:
        v = int(v)
        if v == 0:
            run += 1
            continue
        while run > 15:
            bits.put(*_AC_CODES[0xF0])
            run -= 16
        s = _category(v)
        bits.put(*_AC_CODES[(run << 4) | s])
        bits.put(_amplitude(v, s), s)
        run = 0
    if run:
        bits.put(*_AC_CODES[0x00])
    return dc


def _segment(marker, body):
    return b"\xff" + bytes([marker]) + struct.pack(">H", len(body) + 2) + body


def encode_jpeg(rgb):
    """A baseline JFIF JPEG of `rgb` (YCbCr 4:4:4, flat quantisation, fixed-length Huffman codes)."""
    h, w, _ = rgb.shape
    f = rgb.astype(np.float64)
    ycc = np.stack(
        [
            0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2],
            128 - 0.168736 * f[..., 0] - 0.331264 * f[..., 1] + 0.5 * f[..., 2],
            128 + 0.5 * f[..., 0] - 0.418688 * f[..., 1] - 0.081312 * f[..., 2],
        ],
        axis=-1,
    ) - 128.0
    ph, pw = -(-h // 8) * 8, -(-w // 8) * 8
    ycc = np.pad(ycc, ((0, ph - h), (0, pw - w), (0, 0)), mode="edge")
    # blocks[c, by, bx, 8, 8] -> quantised zigzag coefficients
    blocks = ycc.reshape(ph // 8, 8, pw // 8, 8, 3).transpose(4, 0, 2, 1, 3)
    coefs = np.einsum("ij,cyxjk,lk->cyxil", _DCT, blocks, _DCT)
    q = np.rint(coefs / _Q).astype(np.int64).reshape(3, ph // 8, pw // 8, 64)[..., _ZZ]
    bits = _Bits()
    prev = [0, 0, 0]
    for by in range(ph // 8):
        for bx in range(pw // 8):
            for c in range(3):
                prev[c] = _encode_block(bits, q[c, by, bx], prev[c])
    scan = bits.flush()
    out = b"\xff\xd8"
    out += _segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    out += _segment(0xDB, b"\x00" + bytes([_Q] * 64))
    sof = struct.pack(">BHHB", 8, h, w, 3) + b"".join(bytes([i + 1, 0x11, 0]) for i in range(3))
    out += _segment(0xC0, sof)
    out += _segment(0xC4, b"\x00" + bytes(_DC_COUNTS) + bytes(_DC_SYMS))
    out += _segment(0xC4, b"\x10" + bytes(_AC_COUNTS) + bytes(_AC_SYMS))
    out += _segment(0xDA, b"\x03" + b"".join(bytes([i + 1, 0x00]) for i in range(3)) + b"\x00\x3f\x00")
    return out + scan + b"\xff\xd9"


def corrupt_jpeg(seed=0):
    """A JPEG start-of-image marker followed by bytes that are no JPEG."""
    rng = np.random.default_rng(seed)
    return b"\xff\xd8\xff\xdb\x00\x43\x00" + rng.integers(0, 255, size=200, dtype=np.uint8).tobytes()
