#!/usr/bin/env python3
"""Kernel benchmarks of two builds side by side, interleaved, to see whether a change is slower.

Usage (each DIR a checkout whose benches were built with `cargo bench --workspace --no-run`):

    python3 benches/reference/compare_revisions.py --base /path/to/base --new . \
        --rounds 3 --benches gemm,conv,cross_entropy,sgd,elementwise,train_step

Every round runs each bench binary of the base and then of the new checkout (alternating which
goes first), with short criterion settings, and reads criterion's `bencher` output. A case has
regressed only if the new build is more than 3% slower in every round; the summary gives each
bench's geometric mean of new/base over its cases (medians over rounds, and bests). Cases only
one side has (a new peer, say) are left out.
"""

import argparse
import glob
import math
import os
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"^test (.+?) \.\.\. bench:\s+([\d,]+) ns/iter")


def binary(checkout, bench):
    # Test binaries share the names (kernels/tests/conv.rs); a bench binary links criterion.
    found = [
        p
        for p in glob.glob(os.path.join(checkout, "target", "release", "deps", bench + "-*"))
        if os.access(p, os.X_OK) and not p.endswith(".d") and b"criterion" in open(p, "rb").read()
    ]
    if not found:
        sys.exit(f"no built bench '{bench}' in {checkout} (run cargo bench --workspace --no-run)")
    return max(found, key=os.path.getmtime)


def run(path, args):
    cmd = [path, "--bench", "--output-format", "bencher"] + args
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    times = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            times[m.group(1)] = int(m.group(2).replace(",", ""))
    return times


def geomean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True)
    ap.add_argument("--new", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--benches", default="gemm,conv,cross_entropy,sgd,elementwise,train_step")
    ap.add_argument("--warm-up", default="0.3", help="criterion --warm-up-time, seconds")
    ap.add_argument("--measure", default="1", help="criterion --measurement-time, seconds")
    ap.add_argument("--filter", default="", help="criterion filter (a regex on bench names)")
    a = ap.parse_args()
    crit = ["--warm-up-time", a.warm_up, "--measurement-time", a.measure, "--noplot"]
    if a.filter:
        crit.append(a.filter)
    results = {}  # bench -> case -> {"base": [..], "new": [..]}
    for r in range(a.rounds):
        for bench in a.benches.split(","):
            order = [("base", a.base), ("new", a.new)]
            if r % 2:
                order.reverse()
            for side, checkout in order:
                for case, ns in run(binary(checkout, bench), crit).items():
                    results.setdefault(bench, {}).setdefault(case, {"base": [], "new": []})
                    results[bench][case][side].append(ns)
            print(f"round {r + 1}: {bench} done", file=sys.stderr)
    print("| bench | case | base ns (median) | new ns (median) | new/base median | best |"
          " slower by >3% in every round |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for bench, cases in results.items():
        med_ratios, best_ratios, regressed = [], [], []
        for case, t in sorted(cases.items()):
            if len(t["base"]) != a.rounds or len(t["new"]) != a.rounds:
                continue
            mb, mn = statistics.median(t["base"]), statistics.median(t["new"])
            rb = min(t["new"]) / min(t["base"])
            every = all(n > 1.03 * b for b, n in zip(t["base"], t["new"]))
            med_ratios.append(mn / mb)
            best_ratios.append(rb)
            if every:
                regressed.append(case)
            print(f"| {bench} | {case} | {mb:,.0f} | {mn:,.0f} | {mn / mb:.3f} | {rb:.3f} |"
                  f" {'yes' if every else ''} |")
        summary.append((bench, geomean(med_ratios), geomean(best_ratios), len(med_ratios), regressed))
    print()
    print("| bench | cases | geomean new/base (medians) | (bests) | regressed cases |")
    print("|---|---|---|---|---|")
    for bench, gm, gb, n, reg in summary:
        print(f"| {bench} | {n} | {gm:.3f} | {gb:.3f} | {', '.join(reg) or 'none'} |")


if __name__ == "__main__":
    main()
