#!/usr/bin/env python3
"""simdnet against PyTorch on LeNet-5 training, interleaved, on this machine.

    cargo build --release
    python3 benches/reference/compare_training.py --python /tmp/torchref/bin/python \
        --data /usr/share/datasets/fashion-mnist --rounds 3 --threads 1,2 [--isa avx2]

Each round runs, for each thread count, one epoch of `target/release/simdnet train` and one of
benches/reference/pytorch_lenet.py, one after the other, so both see the same machine state.
With --isa avx2 simdnet runs with SIMDNET_ISA=avx2 and PyTorch with ATEN_CPU_CAPABILITY=avx2
ONEDNN_MAX_CPU_ISA=AVX2. Prints every round as a JSON line, then a Markdown table of the best
round of each side (samples/s) and the ratio. simdnet's figure is its metrics CSV's
samples_per_sec (the optimisation loop only, like the PyTorch script's).
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def run_simdnet(binary, data, threads, isa, workdir):
    env = dict(os.environ)
    if isa:
        env["SIMDNET_ISA"] = isa
    out = os.path.join(workdir, f"model-{threads}.safetensors")
    metrics = os.path.join(workdir, f"metrics-{threads}.csv")
    for path in (out, metrics):
        if os.path.exists(path):
            os.remove(path)
    cmd = [binary, "train", "--data", data, "--epochs", "1", "--threads", str(threads),
           "--out", out, "--metrics", metrics]
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    with open(metrics, newline="") as f:
        row = list(csv.DictReader(f))[-1]
    return {"impl": "simdnet", "threads": threads, "isa": isa or "best",
            "samples_per_sec": float(row["samples_per_sec"]),
            "test_accuracy": float(row["test_accuracy"]),
            "test_seconds": float(row["test_seconds"]) if "test_seconds" in row else None}


def run_pytorch(python, data, threads, isa):
    env = dict(os.environ)
    if isa == "avx2":
        env["ATEN_CPU_CAPABILITY"] = "avx2"
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
    cmd = [python, os.path.join(HERE, "pytorch_lenet.py"), "--data", data, "--epochs", "1",
           "--threads", str(threads)]
    line = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    result = json.loads(line.strip().splitlines()[-1])
    result["isa"] = isa or "best"
    return result


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--python", default=sys.executable, help="a Python with torch installed")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "simdnet"))
    p.add_argument("--data", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--isa", default=None, help="avx2 holds both sides to AVX2")
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            for t in threads:
                for side in ("simdnet", "pytorch"):
                    if side == "simdnet":
                        res = run_simdnet(args.binary, args.data, t, args.isa, workdir)
                    else:
                        res = run_pytorch(args.python, args.data, t, args.isa)
                    res["round"] = r + 1
                    results.append(res)
                    print(json.dumps(res), flush=True)

    print()
    print(f"| threads | simdnet samples/s ({args.isa or 'best'}) | PyTorch samples/s | ratio |")
    print("|---|---|---|---|")
    for t in threads:
        best = {side: max(x["samples_per_sec"] for x in results
                          if x["impl"] == side and x["threads"] == t)
                for side in ("simdnet", "pytorch")}
        print(f"| {t} | {best['simdnet']:,.0f} | {best['pytorch']:,.0f} | "
              f"{best['simdnet'] / best['pytorch']:.2f}x |")


if __name__ == "__main__":
    main()
