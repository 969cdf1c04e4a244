#!/usr/bin/env python3
"""Uniform binning with NumPy, as the reference method's code does it.

Called by `cargo run --release -p wb-kernels --example binning_vs_numpy`, which
writes the data as raw little-endian float32 and compares the bins, counts, shared
values and time with wb_kernels::uniform_bins. Prints one JSON object.

Same problem as the Rust kernel:
  * edges = np.linspace(min, max, k) in float64 (the kernel's edges);
  * bin = np.digitize(x, edges) - 1 (left-closed bins, the maximum alone in k-1);
  * counts = np.bincount(bin), sums = np.bincount(bin, weights=x) (float64);
  * empty bins dropped, shared value = (sum / count) rounded to float32.
"""

import argparse
import json
import sys
import time

import numpy as np


def binning(x, k):
    x64 = x.astype(np.float64)
    edges = np.linspace(float(x.min()), float(x.max()), k)
    b = np.digitize(x64, edges) - 1
    counts = np.bincount(b, minlength=k)
    sums = np.bincount(b, weights=x64, minlength=k)
    keep = np.nonzero(counts)[0]
    renum = np.full(k, -1, dtype=np.int64)
    renum[keep] = np.arange(keep.size)
    labels = renum[b]
    values = (sums[keep] / counts[keep]).astype(np.float32)
    return keep, counts[keep], values, labels


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="raw little-endian float32 file")
    ap.add_argument("--k", type=int, nargs="+", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    x = np.fromfile(args.data, dtype="<f4")
    out = {"numpy": np.__version__, "n": int(x.shape[0]), "runs": []}
    for k in args.k:
        times = []
        res = None
        for _ in range(max(1, args.repeat)):
            t0 = time.perf_counter()
            res = binning(x, k)
            times.append(time.perf_counter() - t0)
        keep, counts, values, labels = res
        out["runs"].append(
            {
                "k": k,
                "times_s": times,
                "bins": [int(v) for v in keep],
                "counts": [int(v) for v in counts],
                "values": [float(v) for v in values],
                "labels_checksum": int(np.sum(labels.astype(np.int64) * (np.arange(labels.size) % 1009 + 1))),
            }
        )
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
