#!/usr/bin/env python3
"""PyTorch's CPU time for the workloads simdnet's criterion benchmarks measure, at the same shapes.

    python3 benches/reference/pytorch_kernels.py [--threads 1] [--only sgemm,conv2d]

One JSON line per workload with the median seconds per call (after warm-up calls) and, where it
means something, GFLOP/s or GB/s. Workloads:

- sgemm C = A B: squares (64, 256, 512, 1024) and LeNet-5's GEMMs at batch 64 (conv layers as one
  im2col GEMM over the batch; fully connected layers forward and both backward products);
- softmax cross-entropy, loss and gradient with respect to the logits, mean reduction;
- the SGD momentum step (fused, foreach and single-tensor implementations), 20 bytes per
  parameter of memory traffic;
- LeNet-5's two convolutions at batch 64, forward and forward + backward (conv1's backward has
  no input gradient, as in training).
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F

LENET_GEMMS = [
    # (m, k, n, what)
    (6, 25, 50176, "conv1 forward"),
    (16, 150, 6400, "conv2 forward"),
    (64, 400, 120, "fc1 forward"),
    (64, 120, 84, "fc2 forward"),
    (64, 84, 10, "fc3 forward"),
    (6, 50176, 25, "conv1 weight gradient"),
    (16, 6400, 150, "conv2 weight gradient"),
    (150, 16, 6400, "conv2 column gradient"),
    (64, 120, 400, "fc1 input gradient"),
    (120, 64, 400, "fc1 weight gradient"),
]


def median_time(fn, calls, warmup=5):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return sorted(samples)[calls // 2]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", default="sgemm,cross_entropy,sgd,conv2d")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    only = set(args.only.split(","))
    common = {"impl": "pytorch", "version": torch.__version__, "threads": args.threads}

    def report(**fields):
        print(json.dumps({**common, **fields}), flush=True)

    if "sgemm" in only:
        shapes = [(s, s, s, f"square {s}") for s in (64, 256, 512, 1024)] + LENET_GEMMS
        for m, k, n, what in shapes:
            a, b = torch.randn(m, k), torch.randn(k, n)
            s = median_time(lambda: torch.mm(a, b), 30 if m * k * n > 1e8 else 200)
            report(kernel="sgemm", m=m, k=k, n=n, what=what, seconds=s,
                   gflops=round(2 * m * k * n / s / 1e9, 2))

    if "cross_entropy" in only:
        for rows, classes in ((64, 10), (256, 1000), (32, 32000)):
            x = torch.randn(rows, classes, requires_grad=True)
            y = torch.randint(0, classes, (rows,))

            def loss_and_grad():
                F.cross_entropy(x, y).backward()
                x.grad = None

            report(kernel="cross_entropy_fwd_bwd", rows=rows, classes=classes,
                   seconds=median_time(loss_and_grad, 300))

    if "sgd" in only:
        for n in (61706, 10_000_000):
            for variant in ("fused", "foreach", "single"):
                param = torch.nn.Parameter(torch.randn(n))
                param.grad = torch.randn(n)
                flags = {"fused": True} if variant == "fused" else {"foreach": variant == "foreach"}
                opt = torch.optim.SGD([param], lr=0.01, momentum=0.9, **flags)
                opt.step()  # the first step only copies the gradient into the buffer
                s = median_time(opt.step, 60)
                report(kernel="sgd_momentum", params=n, variant=variant, seconds=s,
                       gbytes_per_sec=round(20 * n / s / 1e9, 2))

    if "conv2d" in only:
        for cin, cout, hw, pad in ((1, 6, 28, 2), (6, 16, 14, 0)):
            x = torch.randn(64, cin, hw, hw, requires_grad=cin > 1)
            w = torch.randn(cout, cin, 5, 5, requires_grad=True)
            b = torch.randn(cout, requires_grad=True)

            def forward():
                with torch.no_grad():
                    F.conv2d(x, w, b, padding=pad)

            def forward_backward():
                F.conv2d(x, w, b, padding=pad).sum().backward()

            shape = {"cin": cin, "cout": cout, "hw": hw, "pad": pad, "batch": 64}
            report(kernel="conv2d_fwd", **shape, seconds=median_time(forward, 60))
            report(kernel="conv2d_fwd_bwd", **shape, seconds=median_time(forward_backward, 60))


if __name__ == "__main__":
    main()
