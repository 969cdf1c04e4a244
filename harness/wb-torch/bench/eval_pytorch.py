"""PyTorch's own evaluation of a TorchScript model, for the side-by-side benchmark.

Same file, same threads, same batch and the same preprocessing as weightbench (from the
model card).

The process loads everything once, runs one warm-up pass, prints `ready`, then runs one
timed pass per line read on stdin and prints `seconds=<s> top1_correct=<n>` for each, so
that the caller can interleave its own passes with PyTorch's: on a shared or virtual
machine the speed drifts by tens of percent over minutes, and only paired, interleaved
passes compare the two fairly.
"""
import sys
import argparse
import time
import tomllib

import numpy as np
import torch

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--card", required=True)
p.add_argument("--data", required=True)
p.add_argument("--threads", type=int, required=True)
p.add_argument("--batch", type=int, default=500)
a = p.parse_args()

torch.set_num_interop_threads(1)
torch.set_num_threads(a.threads)
card = tomllib.load(open(a.card, "rb"))
inp = card["input"]

raw = np.fromfile(a.data, dtype=np.uint8).reshape(-1, 3073)
labels = torch.from_numpy(raw[:, 0].astype(np.int64))
x = torch.from_numpy(raw[:, 1:].copy()).view(-1, 3, 32, 32).float()
if inp["range"] == "unit":
    x = x / 255.0
if "mean" in inp:
    x = (x - torch.tensor(inp["mean"]).view(1, 3, 1, 1)) / torch.tensor(inp["std"]).view(1, 3, 1, 1)
if inp["layout"] == "nhwc":
    x = x.permute(0, 2, 3, 1)
xs = [b.contiguous() for b in x.split(a.batch)]
ys = list(labels.split(a.batch))

model = torch.jit.load(a.model, map_location="cpu").eval()

def one_pass():
    correct = 0
    t = time.perf_counter()
    for xb, yb in zip(xs, ys):
        correct += int((model(xb).argmax(1) == yb).sum())
    return time.perf_counter() - t, correct


with torch.inference_mode():
    one_pass()
    print("ready", flush=True)
    for _ in sys.stdin:
        dt, correct = one_pass()
        print(f"seconds={dt} top1_correct={correct}", flush=True)
