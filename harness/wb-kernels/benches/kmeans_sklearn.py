#!/usr/bin/env python3
"""scikit-learn's KMeans on 1-D data, configured like wb_kernels::kmeans_1d.

Called by `cargo run --release -p wb-kernels --example kmeans_vs_sklearn` (or
`just bench-kmeans`), which writes the data as raw little-endian float32 and
compares the centroids and the time with its own run. Prints one JSON object.

Same problem as the Rust kernel:
  * init = linspace(min, max, k) of the data, passed explicitly, n_init = 1;
  * algorithm = "lloyd", max_iter as given;
  * tol: scikit-learn scales `tol` by the mean variance of the data and stops
    when the sum of squared centre shifts is <= that, so an absolute tolerance
    `tol_abs` (the kernel's rule) is passed as `tol_abs / var(data)`.
    (scikit-learn also stops when the labels do not change, which the kernel
    reaches one step later with a zero shift: the same centroids.)
  * empty clusters differ: scikit-learn relocates them to far points, the
    kernel sets them to 0.0; the JSON reports whether any cluster was empty.
"""

import argparse
import json
import sys
import time

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", required=True, help="raw little-endian float32 file")
    ap.add_argument("--k", type=int, nargs="+", required=True)
    ap.add_argument("--max-iter", type=int, default=100)
    ap.add_argument("--tol", type=float, default=1e-4, help="absolute tolerance (kernel rule)")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()

    import sklearn
    from sklearn.cluster import KMeans

    x32 = np.fromfile(args.data, dtype="<f4")
    x = x32.astype(args.dtype).reshape(-1, 1)
    var = float(np.var(x32.astype(np.float64)))
    out = {
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "n": int(x.shape[0]),
        "dtype": args.dtype,
        "runs": [],
    }
    lo, hi = float(x32.min()), float(x32.max())
    for k in args.k:
        init = np.linspace(lo, hi, k).astype(np.float32).astype(args.dtype).reshape(-1, 1)
        tol = args.tol / var if var > 0 else 0.0
        times = []
        km = None
        for _ in range(max(1, args.repeat)):
            km = KMeans(
                n_clusters=k,
                init=init,
                n_init=1,
                algorithm="lloyd",
                max_iter=args.max_iter,
                tol=tol,
            )
            t0 = time.perf_counter()
            km.fit(x)
            times.append(time.perf_counter() - t0)
        counts = np.bincount(km.labels_, minlength=k)
        out["runs"].append(
            {
                "k": k,
                "times_s": times,
                "centroids": [float(c) for c in km.cluster_centers_.ravel()],
                "n_iter": int(km.n_iter_),
                "inertia": float(km.inertia_),
                "empty_clusters_at_end": int((counts == 0).sum()),
                "tol_sklearn": tol,
            }
        )
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
