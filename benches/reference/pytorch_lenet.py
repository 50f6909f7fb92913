#!/usr/bin/env python3
"""LeNet-5 on Fashion-MNIST in PyTorch: the reference simdnet's training numbers are compared with.

The recipe is simdnet's default one, written the way the PyTorch tutorials write it:

    model: Conv2d(1, 6, 5, padding=2) -> ReLU -> MaxPool2d(2)
           Conv2d(6, 16, 5)           -> ReLU -> MaxPool2d(2)
           Linear(400, 120) -> ReLU -> Linear(120, 84) -> ReLU -> Linear(84, 10)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    batch 64, pixels / 255, a new random order every epoch

Usage (PyTorch in a venv: python3 -m venv /tmp/torchref && /tmp/torchref/bin/pip install torch numpy):

    python3 benches/reference/pytorch_lenet.py --data /usr/share/datasets/fashion-mnist \
        --epochs 1 --threads 2

Hold PyTorch to AVX2 (to compare with SIMDNET_ISA=avx2) with the environment variables
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2.

--data is a directory holding the four IDX files (raw or .gz), or torchvision's root (the files
under ROOT/FashionMNIST/raw). Each epoch prints one JSON line: training time and samples/s
(the optimisation loop only), and the forward-only evaluation of the test set (its own time).
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

STEMS = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}


def locate(root, stem):
    """The path of `stem` (or `stem.gz`) under root or torchvision's ROOT/FashionMNIST/raw."""
    for folder in (root, os.path.join(root, "FashionMNIST", "raw"), os.path.join(root, "MNIST", "raw")):
        for candidate in (stem, stem + ".gz"):
            path = os.path.join(folder, candidate)
            if os.path.isfile(path):
                return path
    raise SystemExit(f"{stem}[.gz] not found under {root}")


def load_idx(path):
    raw = (gzip.open if path.endswith(".gz") else open)(path, "rb").read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != 0x08:
        raise SystemExit(f"{path}: not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return body.reshape(shape)


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


def images(array):
    return torch.from_numpy(array.astype(np.float32) / 255.0).unsqueeze(1)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--warmup", type=int, default=30, help="untimed steps on a separate model first")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    data = {k: load_idx(locate(args.data, stem)) for k, stem in STEMS.items()}
    train_x, test_x = images(data["train_x"]), images(data["test_x"])
    train_y = torch.from_numpy(data["train_y"].astype(np.int64))
    test_y = torch.from_numpy(data["test_y"].astype(np.int64))

    criterion = nn.CrossEntropyLoss()
    # One-time costs (allocator, kernel selection) are paid on a throwaway model.
    scratch = LeNet5()
    scratch_opt = torch.optim.SGD(scratch.parameters(), lr=args.lr, momentum=args.momentum)
    for _ in range(args.warmup):
        scratch_opt.zero_grad()
        criterion(scratch(train_x[: args.batch_size]), train_y[: args.batch_size]).backward()
        scratch_opt.step()

    model = LeNet5()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    n = len(train_x)
    for epoch in range(1, args.epochs + 1):
        model.train()
        order = torch.randperm(n)
        loss_sum = 0.0
        start = time.perf_counter()
        for lo in range(0, n, args.batch_size):
            batch = order[lo : lo + args.batch_size]
            optimizer.zero_grad()
            loss = criterion(model(train_x[batch]), train_y[batch])
            loss.backward()
            optimizer.step()
            loss_sum += loss.item() * len(batch)
        train_seconds = time.perf_counter() - start

        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            logits = model(test_x)
            test_seconds = time.perf_counter() - start
            test_loss = F.cross_entropy(logits, test_y).item()
            accuracy = (logits.argmax(1) == test_y).double().mean().item()
        print(json.dumps({
            "impl": "pytorch", "version": torch.__version__, "threads": args.threads,
            "capability": os.environ.get("ATEN_CPU_CAPABILITY", "default"), "epoch": epoch,
            "train_seconds": round(train_seconds, 3), "samples_per_sec": round(n / train_seconds, 1),
            "train_loss": round(loss_sum / n, 5), "test_loss": round(test_loss, 5),
            "test_accuracy": round(accuracy, 5), "test_seconds": round(test_seconds, 4),
        }), flush=True)


if __name__ == "__main__":
    main()
