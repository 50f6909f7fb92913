#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/). Python 3 stdlib only.

Names say what the file is: `valid-images*` must parse as an images file, `valid-labels*` as a
labels file, `valid-*` under safetensors/ as a checkpoint, and `bad-*` must be rejected.
tests/fuzz_corpus.rs replays every file (including any a fuzzer adds, which it only requires not
to panic). Run: python3 fuzz/make_corpus.py
"""

import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def images(count, rows=28, cols=28, pixels=None):
    data = pixels if pixels is not None else bytes((i * 7) % 251 for i in range(count * rows * cols))
    return struct.pack(">IIII", 0x803, count, rows, cols) + data


def labels(values):
    return struct.pack(">II", 0x801, len(values)) + bytes(values)


def gz(data):
    return gzip.compress(data, mtime=0)


def safetensors(header, data=b"", raw_header=None):
    text = raw_header if raw_header is not None else json.dumps(header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(text)) + text + data


def f32(*values):
    return struct.pack("<%df" % len(values), *values)


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def idx_corpus():
    one = images(1)
    write("idx", "valid-images-1", one)
    write("idx", "valid-images-0", images(0))
    write("idx", "valid-images-1.gz", gz(one))
    write("idx", "valid-labels-5", labels([0, 9, 3, 3, 1]))
    write("idx", "valid-labels-5.gz", gz(labels([0, 9, 3, 3, 1])))
    write("idx", "bad-empty", b"")
    write("idx", "bad-magic", b"\x12" + one[1:])
    write("idx", "bad-type-float", one[:2] + b"\x0d" + one[3:])
    write("idx", "bad-dims-32x32", images(1, 32, 32, bytes(1024)))
    write("idx", "bad-truncated-images", one[:-1])
    write("idx", "bad-trailing-labels", labels([1, 2]) + b"\x00")
    write("idx", "bad-label-10", labels([1, 10]))
    write("idx", "bad-huge-promise", struct.pack(">IIII", 0x803, 0xFFFFFFFF, 28, 28))
    bad_crc = bytearray(gz(one))
    bad_crc[-8] ^= 0xFF
    write("idx", "bad-crc.gz", bytes(bad_crc))
    write("idx", "bad-truncated.gz", gz(one)[:40])
    lie = bytearray(gz(images(2)))
    lie[-4:] = struct.pack("<I", 16 + 784)  # ISIZE claims one image, the header says two
    write("idx", "bad-isize-lie.gz", bytes(lie))


def safetensors_corpus():
    two = {"__metadata__": {"format": "pt"},
           "w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}
    write("safetensors", "valid-two-f32", safetensors(two, f32(1, 2, 3, 4, 5, 6)))
    write("safetensors", "valid-empty", safetensors({}))
    dtypes = {"d": {"dtype": "F64", "shape": [1], "data_offsets": [0, 8]},
              "h": {"dtype": "F16", "shape": [2], "data_offsets": [8, 12]},
              "b": {"dtype": "BF16", "shape": [2], "data_offsets": [12, 16]}}
    write("safetensors", "valid-f64-f16-bf16",
          safetensors(dtypes, struct.pack("<d", 0.5) + struct.pack("<HH", 0x3C00, 0x0001)
                      + struct.pack("<HH", 0x3F80, 0xC0A0)))
    write("safetensors", "bad-short", b"\x01\x02")
    write("safetensors", "bad-header-too-large", struct.pack("<Q", 100_000_001) + b"{}")
    write("safetensors", "bad-header-past-end", struct.pack("<Q", 64) + b"{}")
    write("safetensors", "bad-json", safetensors(None, raw_header=b'{"w":{"dtype":"F32",}}'))
    write("safetensors", "bad-deep", safetensors(None, raw_header=b'{"a":' + b"[" * 200 + b"]" * 200 + b"}"))
    gap = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
           "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}}
    write("safetensors", "bad-gap", safetensors(gap, bytes(12)))
    overlap = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
               "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    write("safetensors", "bad-overlap", safetensors(overlap, bytes(8)))
    size = {"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}
    write("safetensors", "bad-length-mismatch", safetensors(size, bytes(8)))
    i64 = {"steps": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}
    write("safetensors", "bad-i64", safetensors(i64, bytes(8)))
    overflow = {"a": {"dtype": "F64", "shape": [2 ** 62, 4], "data_offsets": [0, 8]}}
    write("safetensors", "bad-shape-overflow", safetensors(overflow, bytes(8)))
    meta = {"__metadata__": {"epoch": 3}}
    write("safetensors", "bad-metadata-number", safetensors(meta))


if __name__ == "__main__":
    idx_corpus()
    safetensors_corpus()
