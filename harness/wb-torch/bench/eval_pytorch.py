"""PyTorch's own evaluation of a TorchScript model, for the side-by-side benchmark.

Same file, same threads, same batch and the same preprocessing as weightbench (from the
model card); prints images_per_s (best of --reps after one warm-up pass) and top1_correct.
"""
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
p.add_argument("--reps", type=int, default=3)
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
best = float("inf")
correct = 0
with torch.inference_mode():
    for rep in range(a.reps + 1):
        t = time.perf_counter()
        correct = 0
        for xb, yb in zip(xs, ys):
            correct += int((model(xb).argmax(1) == yb).sum())
        dt = time.perf_counter() - t
        if rep > 0:
            best = min(best, dt)
print(f"images_per_s={len(labels) / best}")
print(f"top1_correct={correct}")
