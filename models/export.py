#!/usr/bin/env python3
"""Export weightbench's reference CIFAR-10 models to TorchScript and verify them.

What it does
------------
For each of the six reference models

    resnet20, resnet32, resnet44, resnet56   akamaster CIFAR ResNets (option A), BSD-2-Clause
    resnet8, resnet8-w26                     MLPerf-Tiny image-classification ResNet-8 (F=16 / F=26),
                                             Apache-2.0

this script

1. builds the architecture as a plain PyTorch module (see ``data/MANIFEST.md`` in the
   shared data directory, sections 2 and 3, for the exact definitions),
2. loads the weights from the ``.safetensors`` files in the data directory (strict: every
   tensor must be used, every parameter/buffer must be filled, shapes must match),
3. scripts it with ``torch.jit.script`` (eval mode, float32) and saves ``<out>/<name>.pt``,
4. loads the saved file back and runs it on the 932 bit-exact CIFAR-10 test images
   (``cifar10_test/test_batch_first932_lossless.bin``), building the input exactly as the
   model card ``models/<name>.toml`` says (the card is read and checked against what the
   architecture expects; a disagreeing card is an error), and compares with the golden logits in
   ``cifar10_test/reference_logits_first932_lossless.safetensors``: the max abs difference
   must be <= 1e-3 and the argmax must be identical for every image,
5. writes ``<out>/<name>.stamp`` (JSON) with the sha256 of every input (source weights,
   this script, the model card, test images, reference logits), of the produced ``.pt`` and the measured
   verification numbers.

A model whose ``.pt`` and stamp are present and whose hashes all still match is skipped
("up to date"), so running the script again is quick. ``--force`` re-exports everything.

Module interfaces
-----------------
* akamaster ResNets: input NCHW float32 ``[N, 3, 32, 32]``, already normalized by the caller
  (pixels / 255, then per-channel ImageNet mean/std). Output: logits ``[N, 10]``.
  Parameter/buffer names equal the safetensors keys (``conv1.weight``, ``bn1.weight``,
  ``bn1.bias``, ``bn1.running_mean``, ``bn1.running_var``, ``layer1.0.conv1.weight``, ...,
  ``linear.weight``, ``linear.bias``).
* MLPerf-Tiny ResNet-8: input NHWC float32 ``[N, 32, 32, 3]`` with raw pixel values 0..255
  (no normalization); the module permutes to NCHW internally. Output: logits ``[N, 10]``
  (the Keras softmax is dropped). Names mirror the Keras layer names: ``conv2d.weight``,
  ``conv2d.bias``, ``conv2d_1.weight``, ..., ``batch_normalization.weight`` (gamma),
  ``.bias`` (beta), ``.running_mean`` / ``.running_var`` (moving statistics),
  ``dense.weight``, ``dense.bias``. Kernels are converted HWIO -> OIHW and dense [in, out]
  -> [out, in].

BatchNorm layers carry no ``num_batches_tracked`` buffer, so each module's state_dict has
exactly one entry per source tensor.

Usage (from the repository root)::

    python models/export.py                       # data in ../shared/data, out models/export
    python models/export.py --only resnet20 --force
    python models/export.py --data-dir /path/to/data --out /path/to/export

Defaults are resolved against the repository root (the parent of this script's
directory), so the script works from any working directory; explicit ``--data-dir`` /
``--out`` values are taken relative to the current working directory.

Only needs torch, numpy and safetensors.
"""

import argparse
import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.numpy import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
import int8_program  # noqa: E402  (next to this script)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = "../shared/data"
DEFAULT_OUT = "models/export"

TEST_IMAGES = "cifar10_test/test_batch_first932_lossless.bin"
REFERENCE_LOGITS = "cifar10_test/reference_logits_first932_lossless.safetensors"
NUM_TEST = 932
RECORD_BYTES = 3073
MAX_ABS_DIFF = 1e-3

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ExportError(RuntimeError):
    """A fatal, user-facing problem (missing file, mismatch, ...)."""


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def _drop_num_batches_tracked(module: nn.Module) -> None:
    """Remove BatchNorm's ``num_batches_tracked`` buffer (unused in eval mode) so the
    state_dict mirrors the source weight file one-to-one."""
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            if "num_batches_tracked" in m._buffers:
                del m._buffers["num_batches_tracked"]
            m.register_buffer("num_batches_tracked", None)


# --------------------------------------------------------------------------------------
# akamaster CIFAR ResNet (option A)
# --------------------------------------------------------------------------------------


class BasicBlockA(nn.Module):
    """conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + option-A shortcut, ReLU."""

    downsample: bool
    pad: int

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, eps=1e-5)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-5)
        self.downsample = stride != 1 or in_planes != planes
        # Option A: subsample spatially, zero-pad planes//4 channels on each side.
        self.pad = planes // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample:
            sc = F.pad(x[:, :, ::2, ::2], [0, 0, 0, 0, self.pad, self.pad])
        else:
            sc = x
        return F.relu(out + sc)

    @torch.jit.export
    def batchnorm_layers(self, prefix: str) -> List[Tuple[str, float]]:
        """Name prefixes and eps of bn1 and bn2, the block's own prefix first."""
        return [(prefix + "bn1.", self.bn1.eps), (prefix + "bn2.", self.bn2.eps)]

    @torch.jit.export
    def batchnorm_buffers(self) -> List[torch.Tensor]:
        """Running mean and variance of bn1, then of bn2 (the buffers themselves)."""
        return [self.bn1.running_mean, self.bn1.running_var,
                self.bn2.running_mean, self.bn2.running_var]


class CifarResNetA(nn.Module):
    """akamaster/pytorch_resnet_cifar10 ResNet with k BasicBlocks per stage (6k+2 layers)."""

    def __init__(self, blocks_per_stage: int, num_classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16, eps=1e-5)
        self.layer1 = self._stage(16, 16, blocks_per_stage, 1)
        self.layer2 = self._stage(16, 32, blocks_per_stage, 2)
        self.layer3 = self._stage(32, 64, blocks_per_stage, 2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(in_planes: int, planes: int, n: int, stride: int) -> nn.Sequential:
        blocks = [BasicBlockA(in_planes, planes, stride)]
        blocks += [BasicBlockA(planes, planes, 1) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_stages(x, 0, self.stage_count())

    @torch.jit.export
    def stage_count(self) -> int:
        """Stages: the stem, every residual block, the head."""
        return 2 + len(self.layer1) + len(self.layer2) + len(self.layer3)

    @torch.jit.export
    def stage_prefixes(self) -> List[str]:
        """Per stage, the comma-separated name prefixes of its parameters."""
        out = ["conv1.,bn1."]
        for name, n in (("layer1", len(self.layer1)), ("layer2", len(self.layer2)),
                        ("layer3", len(self.layer3))):
            for i in range(n):
                out.append(name + "." + str(i) + ".")
        out.append("linear.")
        return out

    @torch.jit.export
    def batchnorm_layers(self) -> List[Tuple[str, float]]:
        """Per BatchNorm layer, in model order: its name prefix and its eps."""
        out = [("bn1.", self.bn1.eps)]
        for i, block in enumerate(self.layer1):
            out += block.batchnorm_layers("layer1." + str(i) + ".")
        for i, block in enumerate(self.layer2):
            out += block.batchnorm_layers("layer2." + str(i) + ".")
        for i, block in enumerate(self.layer3):
            out += block.batchnorm_layers("layer3." + str(i) + ".")
        return out

    @torch.jit.export
    def batchnorm_buffers(self) -> List[torch.Tensor]:
        """Running mean and variance of every layer of ``batchnorm_layers()``, in its
        order (the buffers themselves, so a trainer can read and restore them)."""
        out = [self.bn1.running_mean, self.bn1.running_var]
        for block in self.layer1:
            out += block.batchnorm_buffers()
        for block in self.layer2:
            out += block.batchnorm_buffers()
        for block in self.layer3:
            out += block.batchnorm_buffers()
        return out

    @torch.jit.export
    def run_stages(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Stages ``start .. end`` (exclusive) from the activation before ``start``: the
        forward pass in pieces, so an evaluator can resume from a cached activation."""
        i = 0
        if start <= i and i < end:
            x = F.relu(self.bn1(self.conv1(x)))
        i += 1
        for block in self.layer1:
            if start <= i and i < end:
                x = block(x)
            i += 1
        for block in self.layer2:
            if start <= i and i < end:
                x = block(x)
            i += 1
        for block in self.layer3:
            if start <= i and i < end:
                x = block(x)
            i += 1
        if start <= i and i < end:
            x = F.avg_pool2d(x, kernel_size=x.shape[3])  # global 8x8 average pool
            x = self.linear(x.flatten(1))
        return x


def load_akamaster(blocks_per_stage: int, weights: Dict[str, np.ndarray]) -> nn.Module:
    model = CifarResNetA(blocks_per_stage)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
    _strict_load(model, state)
    _drop_num_batches_tracked(model)
    return model


# --------------------------------------------------------------------------------------
# MLPerf-Tiny ResNet-8 (Keras functional model, converted)
# --------------------------------------------------------------------------------------


class TinyResNet8(nn.Module):
    """MLPerf-Tiny image-classification ResNet-8 with base width F.

    Input NHWC raw 0..255 float, output logits. Keras 'same' padding: stride-1 3x3 pads 1
    on every side; stride-2 3x3 on an even input pads 0 top/left and 1 bottom/right;
    stride-2 1x1 pads nothing. BN eps 1e-3. Attribute names mirror the Keras layer names.
    """

    def __init__(self, f: int, num_classes: int = 10) -> None:
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, eps=1e-3)  # noqa: E731
        # stem
        self.conv2d = nn.Conv2d(3, f, 3, padding=1)
        self.batch_normalization = bn(f)
        # block 1 (F, identity shortcut)
        self.conv2d_1 = nn.Conv2d(f, f, 3, padding=1)
        self.batch_normalization_1 = bn(f)
        self.conv2d_2 = nn.Conv2d(f, f, 3, padding=1)
        self.batch_normalization_2 = bn(f)
        # block 2 (2F, stride 2, 1x1 conv shortcut)
        self.conv2d_3 = nn.Conv2d(f, 2 * f, 3, stride=2, padding=0)
        self.batch_normalization_3 = bn(2 * f)
        self.conv2d_4 = nn.Conv2d(2 * f, 2 * f, 3, padding=1)
        self.batch_normalization_4 = bn(2 * f)
        self.conv2d_5 = nn.Conv2d(f, 2 * f, 1, stride=2, padding=0)
        # block 3 (4F, stride 2, 1x1 conv shortcut)
        self.conv2d_6 = nn.Conv2d(2 * f, 4 * f, 3, stride=2, padding=0)
        self.batch_normalization_5 = bn(4 * f)
        self.conv2d_7 = nn.Conv2d(4 * f, 4 * f, 3, padding=1)
        self.batch_normalization_6 = bn(4 * f)
        self.conv2d_8 = nn.Conv2d(2 * f, 4 * f, 1, stride=2, padding=0)
        # head
        self.dense = nn.Linear(4 * f, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_stages(x, 0, 5)

    @torch.jit.export
    def stage_count(self) -> int:
        """Stages: the stem, three residual blocks, the head."""
        return 5

    @torch.jit.export
    def stage_prefixes(self) -> List[str]:
        """Per stage, the comma-separated name prefixes of its parameters."""
        return [
            "conv2d.,batch_normalization.",
            "conv2d_1.,batch_normalization_1.,conv2d_2.,batch_normalization_2.",
            "conv2d_3.,batch_normalization_3.,conv2d_4.,batch_normalization_4.,conv2d_5.",
            "conv2d_6.,batch_normalization_5.,conv2d_7.,batch_normalization_6.,conv2d_8.",
            "dense.",
        ]

    @torch.jit.export
    def batchnorm_layers(self) -> List[Tuple[str, float]]:
        """Per BatchNorm layer, in model order: its name prefix and its eps."""
        eps = self.batch_normalization.eps
        out = [("batch_normalization.", eps)]
        for i in range(1, 7):
            out.append(("batch_normalization_" + str(i) + ".", eps))
        return out

    @torch.jit.export
    def batchnorm_buffers(self) -> List[torch.Tensor]:
        """Running mean and variance of every layer of ``batchnorm_layers()``, in its
        order (the buffers themselves, so a trainer can read and restore them)."""
        return [
            self.batch_normalization.running_mean, self.batch_normalization.running_var,
            self.batch_normalization_1.running_mean, self.batch_normalization_1.running_var,
            self.batch_normalization_2.running_mean, self.batch_normalization_2.running_var,
            self.batch_normalization_3.running_mean, self.batch_normalization_3.running_var,
            self.batch_normalization_4.running_mean, self.batch_normalization_4.running_var,
            self.batch_normalization_5.running_mean, self.batch_normalization_5.running_var,
            self.batch_normalization_6.running_mean, self.batch_normalization_6.running_var,
        ]

    @torch.jit.export
    def run_stages(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Stages ``start .. end`` (exclusive) from the activation before ``start``: the
        forward pass in pieces, so an evaluator can resume from a cached activation."""
        if start <= 0 and 0 < end:
            x = x.permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
            x = F.relu(self.batch_normalization(self.conv2d(x)))
        if start <= 1 and 1 < end:  # block 1
            y = F.relu(self.batch_normalization_1(self.conv2d_1(x)))
            y = self.batch_normalization_2(self.conv2d_2(y))
            x = F.relu(y + x)
        if start <= 2 and 2 < end:  # block 2
            y = self.conv2d_3(F.pad(x, [0, 1, 0, 1]))  # TF 'same', stride 2: pad bottom/right
            y = F.relu(self.batch_normalization_3(y))
            y = self.batch_normalization_4(self.conv2d_4(y))
            x = F.relu(y + self.conv2d_5(x))
        if start <= 3 and 3 < end:  # block 3
            y = self.conv2d_6(F.pad(x, [0, 1, 0, 1]))
            y = F.relu(self.batch_normalization_5(y))
            y = self.batch_normalization_6(self.conv2d_7(y))
            x = F.relu(y + self.conv2d_8(x))
        if start <= 4 and 4 < end:
            # head: AveragePooling2D(8) -> flatten (1x1 spatial, so NHWC/NCHW order agree)
            x = self.dense(F.avg_pool2d(x, kernel_size=8).flatten(1))
        return x


_KERAS_BN = {
    "gamma": "weight",
    "beta": "bias",
    "moving_mean": "running_mean",
    "moving_variance": "running_var",
}


def keras_to_torch_state(weights: Dict[str, np.ndarray]) -> Dict[str, torch.Tensor]:
    state: Dict[str, torch.Tensor] = {}
    for key, arr in weights.items():
        layer, _, var = key.rpartition(".")
        t = torch.from_numpy(np.ascontiguousarray(arr))
        if layer.startswith("conv2d") and var == "kernel":
            if t.ndim != 4:
                raise ExportError(f"{key}: expected a 4-D HWIO conv kernel, got {tuple(t.shape)}")
            state[f"{layer}.weight"] = t.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        elif layer.startswith("dense") and var == "kernel":
            if t.ndim != 2:
                raise ExportError(f"{key}: expected a 2-D [in, out] dense kernel, got {tuple(t.shape)}")
            state[f"{layer}.weight"] = t.t().contiguous()  # [in, out] -> [out, in]
        elif var == "bias" and (layer.startswith("conv2d") or layer.startswith("dense")):
            state[f"{layer}.bias"] = t
        elif layer.startswith("batch_normalization") and var in _KERAS_BN:
            state[f"{layer}.{_KERAS_BN[var]}"] = t
        else:
            raise ExportError(f"unexpected tensor {key!r} in Keras weight file")
    return state


def load_resnet8(f: int, weights: Dict[str, np.ndarray]) -> nn.Module:
    model = TinyResNet8(f)
    _strict_load(model, keras_to_torch_state(weights))
    _drop_num_batches_tracked(model)
    return model


def _strict_load(model: nn.Module, state: Dict[str, torch.Tensor]) -> None:
    """Load ``state`` requiring an exact 1:1 match of names, shapes and dtypes.

    BatchNorm's ``num_batches_tracked`` is not in the sources; BatchNorm fills it in
    itself on load and it is dropped afterwards (see ``_drop_num_batches_tracked``)."""
    expected = {k: v for k, v in model.state_dict().items()
                if not k.endswith(".num_batches_tracked")}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ExportError(
            f"weight names do not match the architecture: missing={missing} unexpected={unexpected}"
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ExportError(f"{k}: shape {tuple(v.shape)} != expected {tuple(expected[k].shape)}")
        if v.dtype != torch.float32:
            raise ExportError(f"{k}: dtype {v.dtype}, expected float32")
    model.load_state_dict(state, strict=True)


# --------------------------------------------------------------------------------------
# Model registry
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelSpec:
    name: str
    weights: str  # relative to data dir
    reference_key: str
    family: str  # "akamaster" or "keras"
    build: Callable[[Dict[str, np.ndarray]], nn.Module]
    expected_correct: int  # from MANIFEST (NumPy re-implementation), informative


MODELS: List[ModelSpec] = [
    ModelSpec("resnet20", "cifar10_resnet_akamaster/resnet20.safetensors", "akamaster_resnet20",
              "akamaster", lambda w: load_akamaster(3, w), 854),
    ModelSpec("resnet32", "cifar10_resnet_akamaster/resnet32.safetensors", "akamaster_resnet32",
              "akamaster", lambda w: load_akamaster(5, w), 867),
    ModelSpec("resnet44", "cifar10_resnet_akamaster/resnet44.safetensors", "akamaster_resnet44",
              "akamaster", lambda w: load_akamaster(7, w), 871),
    ModelSpec("resnet56", "cifar10_resnet_akamaster/resnet56.safetensors", "akamaster_resnet56",
              "akamaster", lambda w: load_akamaster(9, w), 863),
    ModelSpec("resnet8", "cifar10_resnet8_mlperf_tiny/resnet8.safetensors", "mlperf_tiny_resnet8",
              "keras", lambda w: load_resnet8(16, w), 818),
    ModelSpec("resnet8-w26", "cifar10_resnet8_mlperf_tiny/resnet8_w26.safetensors",
              "mlperf_tiny_resnet8_w26", "keras", lambda w: load_resnet8(26, w), 829),
]
MODEL_NAMES = [m.name for m in MODELS]

# The input each architecture family was trained with (mirrors the [input] section of the
# model cards; the cards are checked against this so the two cannot drift apart).
FAMILY_INPUT = {
    "akamaster": {"layout": "nchw", "range": "unit",
                  "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    "keras": {"layout": "nhwc", "range": "raw255"},
}
CARD_DIR = Path(__file__).resolve().parent


def load_card(spec: ModelSpec) -> Optional[Dict[str, object]]:
    """Read ``models/<name>.toml`` (next to this script) and check it agrees with the
    exporter. Returns None (with a note) when the card is absent or tomllib is unavailable
    (Python < 3.11)."""
    path = CARD_DIR / f"{spec.name}.toml"
    if not path.is_file():
        print(f"[{spec.name}] note: no model card at {path}; using built-in input spec")
        return None
    try:
        import tomllib
    except ImportError:
        print(f"[{spec.name}] note: tomllib unavailable (Python < 3.11); model card not checked")
        return None
    with open(path, "rb") as fh:
        card = tomllib.load(fh)
    problems = []
    if card.get("name") != spec.name:
        problems.append(f"name = {card.get('name')!r}, expected {spec.name!r}")
    if card.get("file") != f"export/{spec.name}.pt":
        problems.append(f"file = {card.get('file')!r}, expected 'export/{spec.name}.pt'")
    if card.get("num_classes") != 10:
        problems.append(f"num_classes = {card.get('num_classes')!r}, expected 10")
    want = FAMILY_INPUT[spec.family]
    got = card.get("input", {})
    if set(got) != set(want) or any(
            (not np.allclose(got[k], want[k], rtol=0, atol=1e-9)) if k in ("mean", "std")
            else got[k] != want[k] for k in want):
        problems.append(f"[input] = {got}, expected {want}")
    ref = card.get("reference", {})
    if ref.get("key") != spec.reference_key or ref.get("logits") != REFERENCE_LOGITS:
        problems.append(f"[reference] = {ref}, expected key {spec.reference_key!r} and "
                        f"logits {REFERENCE_LOGITS!r}")
    if problems:
        raise ExportError(f"model card {path} disagrees with export.py: " + "; ".join(problems))
    return card


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ExportError(f"missing {what}: looked at {path}")
    return path


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_test_images(path: Path):
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size != NUM_TEST * RECORD_BYTES:
        raise ExportError(
            f"{path}: {raw.size} bytes, expected {NUM_TEST} records x {RECORD_BYTES} = "
            f"{NUM_TEST * RECORD_BYTES} bytes"
        )
    rec = raw.reshape(NUM_TEST, RECORD_BYTES)
    labels = rec[:, 0].astype(np.int64)
    pixels = rec[:, 1:].reshape(NUM_TEST, 3, 32, 32)  # R, G, B planes, row-major
    return pixels, labels


def make_input(pixels: np.ndarray, spec_input: Dict[str, object]) -> torch.Tensor:
    """Build the model input from uint8 [N, 3, 32, 32] pixels exactly as a model card's
    [input] section describes: range scaling ("unit" = /255, "raw255" = as is), then the
    optional per-channel (x - mean) / std, then the layout ("nchw" or "nhwc"). float32."""
    x = pixels.astype(np.float32)
    if spec_input["range"] == "unit":
        x = x / np.float32(255.0)
    elif spec_input["range"] != "raw255":
        raise ExportError(f"unknown input range {spec_input['range']!r}")
    if "mean" in spec_input:
        x = x - np.asarray(spec_input["mean"], dtype=np.float32).reshape(1, 3, 1, 1)
    if "std" in spec_input:
        x = x / np.asarray(spec_input["std"], dtype=np.float32).reshape(1, 3, 1, 1)
    if spec_input["layout"] == "nhwc":
        x = x.transpose(0, 2, 3, 1)
    elif spec_input["layout"] != "nchw":
        raise ExportError(f"unknown input layout {spec_input['layout']!r}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# --------------------------------------------------------------------------------------
# Export + verify
# --------------------------------------------------------------------------------------


def export_model(spec: ModelSpec, weights_path: Path, out_path: Path) -> None:
    weights = load_file(str(weights_path))
    model = spec.build(weights).float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    _save_atomic(torch.jit.script(model), out_path, spec.name)


def _save_atomic(scripted, out_path: Path, name: str) -> None:
    """Atomic write: a crash never leaves a half-written .pt behind. The temporary file gets
    the final basename (inside a temporary directory) because TorchScript names the
    archive's root folder after it; this keeps repeated exports byte-identical."""
    tmp_dir = tempfile.mkdtemp(prefix=f".{name}.", dir=out_path.parent)
    tmp = os.path.join(tmp_dir, out_path.name)
    try:
        scripted.save(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # normal file permissions
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
        os.rmdir(tmp_dir)


# The int8 program of each model (models/int8_program.py).
INT8_PROGRAMS: Dict[str, Callable[[], "int8_program.Int8Program"]] = {
    "resnet20": lambda: int8_program.akamaster_program(3),
    "resnet32": lambda: int8_program.akamaster_program(5),
    "resnet44": lambda: int8_program.akamaster_program(7),
    "resnet56": lambda: int8_program.akamaster_program(9),
    "resnet8": int8_program.resnet8_program,
    "resnet8-w26": int8_program.resnet8_program,
}
# Images of the 932 that calibrate the exporter's int8 check; the rest are compared.
INT8_CHECK_CALIBRATION = 200
# Least top-1 agreement of the int8 program with the float model on the compared images.
INT8_MIN_AGREEMENT = 0.95


def export_int8(spec: ModelSpec, pt_path: Path, out_path: Path, x: torch.Tensor,
                labels: np.ndarray) -> Dict[str, object]:
    """Saves ``<name>.int8.pt`` and checks it: the model's own weights quantized as
    int8-affine does keep their integer codes through BatchNorm folding, and after
    calibrating on the first 200 images the int8 program agrees with the float model
    on the top-1 class of at least 95 % of the other 732."""
    _save_atomic(torch.jit.script(INT8_PROGRAMS[spec.name]()), out_path, spec.name + ".int8")
    prog = torch.jit.load(str(out_path), map_location="cpu")
    float_model = torch.jit.load(str(pt_path), map_location="cpu")
    sd = dict(float_model.state_dict())
    scales, codes = {}, {}
    for name in prog.layer_names():
        w = sd[name + "weight"]
        r = int8_program.per_channel_int8(w)
        scales[name + "weight"] = r["scale"]
        codes[name] = r["q"]
        sd[name + "weight"] = r["q"] * r["scale"].reshape([-1] + [1] * (w.dim() - 1))
    prog.install(list(sd), list(sd.values()), list(scales), list(scales.values()))
    for i, name in enumerate(prog.layer_names()):
        got = prog.weight_codes(i).to(torch.float32).abs()
        want = codes[name].abs()
        # Channels whose scale is below 1e-12 hold weights under 1.3e-10: zero in int8.
        live = scales[name + "weight"] >= 1e-12
        if not torch.equal(got[live], want[live]):
            raise ExportError(f"{spec.name}: int8 program changes the codes of {name}weight")
    n = INT8_CHECK_CALIBRATION
    for b in range(0, n, 100):
        prog.calibrate(x[b:min(b + 100, n)])
    prog.finalize()
    with torch.no_grad():
        ref = float_model(x[n:]).argmax(1)
        # The quantized kernels resize their outputs, which PyTorch's determinism switch
        # rejects by rule; their results do not depend on it.
        torch.use_deterministic_algorithms(False)
        try:
            got = prog(x[n:]).argmax(1)
        finally:
            torch.use_deterministic_algorithms(True)
    y = torch.from_numpy(labels[n:])
    result = {
        "calibration_images": n,
        "compared_images": int(y.numel()),
        "agreement": round(float((ref == got).float().mean()), 4),
        "correct_float": int((ref == y).sum()),
        "correct_int8": int((got == y).sum()),
    }
    if not result["agreement"] >= INT8_MIN_AGREEMENT:
        bad = out_path.with_suffix(".pt.failed")
        os.replace(out_path, bad)
        raise ExportError(f"{spec.name}: int8 program agrees with the float model on "
                          f"{result['agreement']:.1%} of images (< {INT8_MIN_AGREEMENT:.0%}); "
                          f"output moved to {bad}")
    return result


def verify_model(spec: ModelSpec, pt_path: Path, spec_input: Dict[str, object],
                 pixels: np.ndarray, labels: np.ndarray, reference: np.ndarray,
                 source_weights: Dict[str, np.ndarray]) -> Dict[str, object]:
    module = torch.jit.load(str(pt_path), map_location="cpu")
    module.eval()

    # Names in the saved module must match the card's promises.
    sd = module.state_dict()
    if spec.family == "akamaster":
        expected_names = set(source_weights)
    else:
        expected_names = set(keras_to_torch_state(source_weights))
    if set(sd) != expected_names:
        raise ExportError(
            f"{pt_path}: state_dict names differ from the source: "
            f"extra={sorted(set(sd) - expected_names)} missing={sorted(expected_names - set(sd))}"
        )
    bad_dtype = [k for k, v in sd.items() if v.dtype != torch.float32]
    if bad_dtype:
        raise ExportError(f"{pt_path}: non-float32 tensors {bad_dtype}")

    x = make_input(pixels, spec_input)
    with torch.no_grad():
        logits = module(x).numpy()
    if logits.shape != reference.shape:
        raise ExportError(f"{spec.name}: output shape {logits.shape} != reference {reference.shape}")
    check_stages(spec.name, module, x[:128], set(sd))
    check_batchnorm(spec.name, module, sd)
    max_diff = float(np.max(np.abs(logits.astype(np.float64) - reference.astype(np.float64))))
    pred = logits.argmax(axis=1)
    ref_pred = reference.argmax(axis=1)
    argmax_mismatch = int(np.sum(pred != ref_pred))
    correct = int(np.sum(pred == labels))
    return {
        "max_abs_diff": max_diff,
        "argmax_mismatches": argmax_mismatch,
        "correct": correct,
        "total": int(labels.size),
        "accuracy_pct": round(100.0 * correct / labels.size, 2),
    }


def check_stages(name: str, module, x: torch.Tensor, params: set) -> None:
    """The staged forward pass (``run_stages``) cut at every boundary gives logits
    bit-identical to the whole forward pass, and every tensor belongs to one stage."""
    n = module.stage_count()
    prefixes = [p.split(",") for p in module.stage_prefixes()]
    if len(prefixes) != n:
        raise ExportError(f"{name}: {len(prefixes)} stage prefix lists for {n} stages")
    for key in params:
        owners = [i for i, ps in enumerate(prefixes) if any(key.startswith(p) for p in ps)]
        if len(owners) != 1:
            raise ExportError(f"{name}: tensor {key} is in stages {owners}, expected one")
    with torch.no_grad():
        whole = module(x)
        for b in range(1, n):
            split = module.run_stages(module.run_stages(x, 0, b), b, n)
            if not torch.equal(split, whole):
                raise ExportError(f"{name}: the forward pass cut before stage {b} differs")


def check_batchnorm(name: str, module, sd: Dict[str, torch.Tensor]) -> None:
    """``batchnorm_layers()`` names every BatchNorm layer once, in state_dict order, and
    ``batchnorm_buffers()`` returns their running statistics themselves (not copies)."""
    layers = module.batchnorm_layers()
    want = [k[: -len("running_mean")] for k in sd if k.endswith(".running_mean")]
    if [p for p, _ in layers] != want:
        raise ExportError(f"{name}: batchnorm_layers() lists {[p for p, _ in layers]}, "
                          f"the module has {want}")
    buffers = module.batchnorm_buffers()
    if len(buffers) != 2 * len(layers):
        raise ExportError(f"{name}: {len(buffers)} BatchNorm buffers for {len(layers)} layers")
    for i, (prefix, _) in enumerate(layers):
        for j, stat in enumerate(("running_mean", "running_var")):
            if buffers[2 * i + j].data_ptr() != sd[prefix + stat].data_ptr():
                raise ExportError(f"{name}: batchnorm_buffers()[{2 * i + j}] is not "
                                  f"{prefix}{stat} itself")


def _format_result(r: Dict[str, object]) -> str:
    return (f"max |diff| = {r['max_abs_diff']:.3e}, argmax mismatches = {r['argmax_mismatches']}, "
            f"accuracy = {r['correct']}/{r['total']} = {r['accuracy_pct']:.2f} %")


def _read_stamp(path: Path) -> Optional[Dict[str, object]]:
    try:
        with open(path, "r", encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def process(spec: ModelSpec, data_dir: Path, out_dir: Path, force: bool, script_sha: str,
            test_sha: str, ref_sha: str, pixels: np.ndarray, labels: np.ndarray,
            references: Dict[str, np.ndarray]) -> Dict[str, object]:
    weights_path = _require(data_dir / spec.weights, f"weights for {spec.name}")
    pt_path = out_dir / f"{spec.name}.pt"
    stamp_path = out_dir / f"{spec.name}.stamp"
    int8_path = out_dir / f"{spec.name}.int8.pt"
    card = load_card(spec)
    spec_input = card["input"] if card is not None else FAMILY_INPUT[spec.family]
    inputs = {
        "source": spec.weights,
        "source_sha256": sha256_file(weights_path),
        "script_sha256": script_sha,
        "int8_script_sha256": sha256_file(Path(int8_program.__file__).resolve()),
        "card_sha256": (sha256_file(CARD_DIR / f"{spec.name}.toml") if card is not None
                        else None),
        "test_images_sha256": test_sha,
        "reference_logits_sha256": ref_sha,
        "torch_version": torch.__version__,
    }

    if not force and pt_path.is_file():
        stamp = _read_stamp(stamp_path)
        if stamp is not None and all(stamp.get(k) == v for k, v in inputs.items()) \
                and stamp.get("pt_sha256") == sha256_file(pt_path) \
                and int8_path.is_file() \
                and stamp.get("int8_pt_sha256") == sha256_file(int8_path):
            print(f"[{spec.name}] up to date ({pt_path}); last verification: "
                  f"{_format_result(stamp['verification'])}")
            return stamp["verification"]

    if spec.reference_key not in references:
        raise ExportError(f"reference key {spec.reference_key!r} not found in "
                          f"{data_dir / REFERENCE_LOGITS}")

    print(f"[{spec.name}] exporting {weights_path} -> {pt_path}")
    if stamp_path.exists():
        stamp_path.unlink()
    export_model(spec, weights_path, pt_path)

    result = verify_model(spec, pt_path, spec_input, pixels, labels,
                          references[spec.reference_key], load_file(str(weights_path)))
    print(f"[{spec.name}] verify vs {spec.reference_key}: {_format_result(result)}")
    problems = []
    if not result["max_abs_diff"] <= MAX_ABS_DIFF:  # also catches NaN
        problems.append(f"max abs diff {result['max_abs_diff']:.3e} > {MAX_ABS_DIFF:g}")
    if result["argmax_mismatches"] != 0:
        problems.append(f"{result['argmax_mismatches']} argmax mismatches")
    if problems:
        bad = pt_path.with_suffix(".pt.failed")
        os.replace(pt_path, bad)
        raise ExportError(f"{spec.name}: verification FAILED ({'; '.join(problems)}); "
                          f"output moved to {bad}")
    if result["correct"] != spec.expected_correct:
        print(f"[{spec.name}] note: {result['correct']} correct, MANIFEST reports "
              f"{spec.expected_correct} (logits still match the reference)")

    x = make_input(pixels, spec_input)
    int8_result = export_int8(spec, pt_path, int8_path, x, labels)
    print(f"[{spec.name}] int8 program {int8_path.name}: top-1 agreement with float "
          f"{int8_result['agreement']:.1%} on {int8_result['compared_images']} images "
          f"(int8 {int8_result['correct_int8']}, float {int8_result['correct_float']} correct)")

    stamp = dict(inputs)
    stamp["pt_sha256"] = sha256_file(pt_path)
    stamp["int8_pt_sha256"] = sha256_file(int8_path)
    stamp["int8_verification"] = int8_result
    stamp["verification"] = result
    tmp = stamp_path.with_suffix(".stamp.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(stamp, fh, indent=2, sort_keys=True)
        fh.write("\n")
    os.replace(tmp, stamp_path)
    return result


def _resolve(arg: Optional[str], default: str) -> Path:
    if arg is None:
        return (REPO_ROOT / default).resolve()
    return Path(arg).resolve()


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description="Export weightbench's reference CIFAR-10 models to TorchScript and verify "
                    "them against golden logits.",
    )
    parser.add_argument("--data-dir", default=None,
                        help=f"shared data directory (default: {DEFAULT_DATA_DIR}, relative to "
                             "the repository root)")
    parser.add_argument("--out", default=None,
                        help=f"output directory for <name>.pt and <name>.stamp (default: "
                             f"{DEFAULT_OUT}, relative to the repository root)")
    parser.add_argument("--only", choices=MODEL_NAMES, action="append", metavar="NAME",
                        help=f"export only this model (repeatable); one of {', '.join(MODEL_NAMES)}")
    parser.add_argument("--force", action="store_true",
                        help="re-export even if the stamp says the model is up to date")
    parser.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1),
                        help="torch intra-op threads (default: min(4, number of CPUs))")
    args = parser.parse_args(argv)
    try:  # keep stdout/stderr in order when piped
        sys.stdout.reconfigure(line_buffering=True)
    except AttributeError:
        pass

    torch.manual_seed(0)
    torch.set_num_threads(max(1, args.threads))
    torch.use_deterministic_algorithms(True)

    data_dir = _resolve(args.data_dir, DEFAULT_DATA_DIR)
    out_dir = _resolve(args.out, DEFAULT_OUT)
    selected = [m for m in MODELS if not args.only or m.name in args.only]

    try:
        if not data_dir.is_dir():
            raise ExportError(f"data directory not found: looked at {data_dir}")
        test_path = _require(data_dir / TEST_IMAGES, "CIFAR-10 test images")
        ref_path = _require(data_dir / REFERENCE_LOGITS, "reference logits")
        out_dir.mkdir(parents=True, exist_ok=True)

        script_sha = sha256_file(Path(__file__).resolve())
        test_sha = sha256_file(test_path)
        ref_sha = sha256_file(ref_path)
        pixels, labels = load_test_images(test_path)
        references = load_file(str(ref_path))

        print(f"data dir: {data_dir}\nout dir:  {out_dir}\ntorch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        results = {}
        for spec in selected:
            results[spec.name] = process(spec, data_dir, out_dir, args.force, script_sha,
                                         test_sha, ref_sha, pixels, labels, references)
    except ExportError as e:
        print(f"export.py: error: {e}", file=sys.stderr)
        return 1

    print("\nsummary (932 bit-exact CIFAR-10 test images):")
    for name, r in results.items():
        print(f"  {name:<12} max|diff| {r['max_abs_diff']:.3e}  "
              f"acc {r['correct']}/{r['total']} = {r['accuracy_pct']:.2f} %")
    print("all models OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
