#!/usr/bin/env python3
"""Builds the Fashion-MNIST subset embedded in simdnet (src/data/fashion-mnist-subset/).

Python 3 standard library only. Reads the four gzip-compressed IDX files of Debian's
dataset-fashion-mnist (or any directory given as the first argument) and writes raw IDX files
next to this script:

  train-images-idx3-ubyte / train-labels-idx1-ubyte: the first 500 images of each class in the
      training file, 5,000 in all, kept in file order;
  t10k-images-idx3-ubyte / t10k-labels-idx1-ubyte: the first 100 images of each class in the test
      file, 1,000 in all, kept in file order.

Together about 4.7 MB. Run: python3 src/data/fashion-mnist-subset/make_subset.py [/usr/share/datasets/fashion-mnist]
"""

import gzip
import os
import struct
import sys

SIDE = 28


def read_idx(path, ndims):
    with gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    if magic != 0x0800 | ndims:
        sys.exit(f"{path}: bad magic 0x{magic:08x}")
    dims = struct.unpack(">" + "I" * ndims, data[4:4 + 4 * ndims])
    return dims, data[4 + 4 * ndims:]


def find(src, name):
    raw = os.path.join(src, name)
    return raw if os.path.exists(raw) else raw + ".gz"


def subset(src, prefix, per_class):
    (n, rows, cols), pixels = read_idx(find(src, f"{prefix}-images-idx3-ubyte"), 3)
    (n_labels,), labels = read_idx(find(src, f"{prefix}-labels-idx1-ubyte"), 1)
    assert (rows, cols) == (SIDE, SIDE) and n == n_labels == len(labels)
    taken = [0] * 10
    keep = []
    for i, label in enumerate(labels):
        if taken[label] < per_class:
            taken[label] += 1
            keep.append(i)
    assert taken == [per_class] * 10, taken
    size = rows * cols
    images = b"".join(pixels[i * size:(i + 1) * size] for i in keep)
    kept_labels = bytes(labels[i] for i in keep)
    return len(keep), images, kept_labels


def write(path, header, payload):
    with open(path, "wb") as f:
        f.write(header)
        f.write(payload)


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out = os.path.dirname(os.path.abspath(__file__))
    for prefix, per_class in (("train", 500), ("t10k", 100)):
        n, images, labels = subset(src, prefix, per_class)
        write(os.path.join(out, f"{prefix}-images-idx3-ubyte"),
              struct.pack(">IIII", 0x803, n, SIDE, SIDE), images)
        write(os.path.join(out, f"{prefix}-labels-idx1-ubyte"),
              struct.pack(">II", 0x801, n), labels)
        print(f"{prefix}: {n} images")


if __name__ == "__main__":
    main()
