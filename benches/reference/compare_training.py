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

With --peak PATH (the machine_peak.c binary) each round also runs the FMA probe, and the
summary gives each side's 1 -> 2 thread scaling per round beside the probe's, the training
step's fraction of the FMA peak (--flops-per-sample, 2.26 M for a LeNet-5 step), and the
evaluation of the test set: simdnet's test_seconds against the script's forward-only time.
"""
import argparse
import csv
import re
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


def run_peak(binary, isa):
    """FMA GFLOP/s by thread count, of the widest registers the ISA names (fma512 for best)."""
    out = subprocess.run([binary], check=True, capture_output=True, text=True).stdout
    rates = {}
    for width, threads, gflops in re.findall(r"^fma(\d+) threads=(\d+) gflops=([\d.]+)", out, re.M):
        rates.setdefault(int(width), {})[int(threads)] = float(gflops)
    width = 256 if isa == "avx2" or 512 not in rates else 512
    return {"impl": "fma_probe", "width": width, "gflops": rates[width]}


def summary(results, threads, isa, flops_per_sample):
    rounds = sorted({x["round"] for x in results})

    def get(side, t, r, key):
        for x in results:
            if x["impl"] == side and x.get("threads") == t and x["round"] == r:
                return x[key]
        return None

    print(f"| threads | simdnet samples/s ({isa or 'best'}) | PyTorch samples/s | ratio |"
          + (" simdnet GFLOP/s | FMA peak GFLOP/s | fraction of peak |" if flops_per_sample else ""))
    print("|---|---|---|---|" + ("---|---|---|" if flops_per_sample else ""))
    for t in threads:
        best = {side: max(x["samples_per_sec"] for x in results
                          if x["impl"] == side and x["threads"] == t)
                for side in ("simdnet", "pytorch")}
        line = (f"| {t} | {best['simdnet']:,.0f} | {best['pytorch']:,.0f} | "
                f"{best['simdnet'] / best['pytorch']:.2f}x |")
        peaks = [x["gflops"].get(t) for x in results if x["impl"] == "fma_probe"]
        peaks = [p for p in peaks if p]
        if flops_per_sample and peaks:
            gflops = best["simdnet"] * flops_per_sample / 1e9
            line += f" {gflops:.1f} | {max(peaks):.1f} | {gflops / max(peaks):.1%} |"
        print(line)

    if 1 in threads and 2 in threads:
        print()
        print("| round | simdnet 1 -> 2 threads | PyTorch 1 -> 2 | FMA probe 1 -> 2 |")
        print("|---|---|---|---|")
        for r in rounds:
            cells = []
            for side in ("simdnet", "pytorch"):
                one, two = get(side, 1, r, "samples_per_sec"), get(side, 2, r, "samples_per_sec")
                cells.append(f"{two / one:.2f}x" if one and two else "-")
            probe = [x["gflops"] for x in results if x["impl"] == "fma_probe" and x["round"] == r]
            cells.append(f"{probe[0][2] / probe[0][1]:.2f}x" if probe and 1 in probe[0]
                         and 2 in probe[0] else "-")
            print(f"| {r} | " + " | ".join(cells) + " |")

    print()
    print("| threads | simdnet test_seconds (best) | PyTorch forward-only seconds (best) | ratio |")
    print("|---|---|---|---|")
    for t in threads:
        sim = [x["test_seconds"] for x in results if x["impl"] == "simdnet" and x["threads"] == t
               and x["test_seconds"] is not None]
        pt = [x["test_seconds"] for x in results if x["impl"] == "pytorch" and x["threads"] == t]
        if sim and pt:
            print(f"| {t} | {min(sim):.4f} | {min(pt):.4f} | {min(pt) / min(sim):.1f}x |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--python", default=sys.executable, help="a Python with torch installed")
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "simdnet"))
    p.add_argument("--data", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--isa", default=None, help="avx2 holds both sides to AVX2")
    p.add_argument("--peak", default=None, help="the machine_peak.c binary, run once a round")
    p.add_argument("--flops-per-sample", type=float, default=2.26e6)
    args = p.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as workdir:
        for r in range(args.rounds):
            if args.peak:
                res = run_peak(args.peak, args.isa)
                res["round"] = r + 1
                results.append(res)
                print(json.dumps(res), flush=True)
            for t in threads:
                for side in ("simdnet", "pytorch"):
                    if side == "simdnet":
                        res = run_simdnet(args.binary, args.data, t, args.isa, workdir)
                    else:
                        res = run_pytorch(args.python, args.data, t, args.isa)
                    res["round"] = r + 1
                    results.append(res)
                    print(json.dumps(res), flush=True)

    summary(results, threads, args.isa, args.flops_per_sample if args.peak else None)


if __name__ == "__main__":
    main()
