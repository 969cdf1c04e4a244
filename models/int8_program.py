"""The int8 execution path of the reference models: libtorch's quantized engine.

``export.py`` saves, next to each float model ``<name>.pt``, a TorchScript module
``<name>.int8.pt`` built here. It holds no weights: it is the model's graph as a short
program of quantized operators, and the harness fills it at run time from an int8
artifact:

1. ``install(names, tensors, scale_names, scales)`` folds every BatchNorm into the
   convolution before it and quantizes the folded weights per output channel to
   ``qint8``. The weights are
   the decoded artifact's tensors by name (the float module's state_dict names); the
   scales are, for ``<layer>.weight``, the artifact's per-output-channel scales. Folding
   multiplies channel ``c`` by ``g_c = gamma_c / sqrt(var_c + eps)``, so a weight
   ``q * s_c`` becomes ``(sign(g_c) q) * (|g_c| s_c)``: the artifact's integers are kept
   exactly, only the scale changes. A layer without scales is quantized symmetrically
   per channel from its own folded weights (``max |w| / 127``).
2. ``reset_calibration()``, then ``calibrate(x)`` on batches of calibration images, runs
   the same program in float with the quantized weights and records the range of every
   activation; ``finalize()`` turns the ranges into ``quint8`` scales and zero points
   (min/max, the range widened to include 0; ``reduce_range`` halves it to 7 bits, as
   PyTorch's x86/fbgemm defaults do for CPUs without VNNI) and prepacks the weights.
3. ``forward(x)`` takes the float module's input and returns float logits: the input is
   quantized once, every convolution (with its ReLU fused), residual addition, pooling
   and the classifier run on ``quint8`` activations and ``qint8`` weights, and the
   logits are dequantized at the end.

Program: a list of operations ``[code, a, b, layer, relu]``; operation ``i``'s output
is value ``i``; ``a`` and ``b`` name earlier values.
"""

from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor, nn

OP_INPUT = 0  # (TorchScript methods use the literals) value = the (quantized) input
OP_CONV = 1  # value = conv(layer)(a), ReLU if relu
OP_ADD = 2  # value = a + b, ReLU if relu
OP_SHORTCUT_A = 3  # value = a[:, :, ::2, ::2] zero-padded by b channels on each side
OP_HEAD = 4  # value = linear(layer)(global average pool of a)


class Int8Program(nn.Module):
    """A model's graph on libtorch's quantized CPU kernels (see the module doc)."""

    conv_packed: List[torch.classes.quantized.Conv2dPackedParamsBase]
    linear_packed: List[torch.classes.quantized.LinearPackedParamsBase]
    wq: List[Tensor]
    bias: List[Tensor]
    lo: List[float]
    hi: List[float]
    scale: List[float]
    zero_point: List[int]
    packed_index: List[int]

    def __init__(self, layers: List[Dict[str, object]], ops: List[List[int]],
                 nhwc: bool) -> None:
        super().__init__()
        # Per layer: the weight-name prefix, its BatchNorm's prefix ("" for none), the BN
        # eps, whether the layer has its own bias, and [stride, left, right, top, bottom,
        # is_linear].
        self.names: List[str] = [str(x["name"]) for x in layers]
        self.bn_names: List[str] = [str(x.get("bn", "")) for x in layers]
        self.bn_eps: List[float] = [float(x.get("eps", 0.0)) for x in layers]
        self.has_bias: List[bool] = [bool(x.get("bias", False)) for x in layers]
        self.geometry: List[List[int]] = [
            [int(x.get("stride", 1))] + [int(p) for p in x.get("pad", [0, 0, 0, 0])]
            + [1 if x.get("linear", False) else 0] for x in layers]
        self.ops: List[List[int]] = ops
        self.nhwc = nhwc
        self.reduce_range = False
        # Filled by install(): quantized folded weights and float biases per layer.
        self.wq = []
        self.bias = []
        # Filled by calibrate()/finalize(): the range, scale and zero point per value.
        self.lo = []
        self.hi = []
        self.scale = []
        self.zero_point = []
        self.conv_packed = []
        self.linear_packed = []
        self.packed_index = []
        self.ready = False

    @torch.jit.export
    def layer_names(self) -> List[str]:
        """The weight-name prefix of every quantized layer, in program order."""
        return self.names

    @torch.jit.export
    def install(self, names: List[str], tensors: List[Tensor], scale_names: List[str],
                scale_values: List[Tensor]) -> None:
        """Folds BatchNorm and quantizes every layer's weights (see the module doc);
        the calibration is reset. Weights and scales come as parallel lists of names and
        tensors (typed lists cross the libtorch boundary where dictionaries do not)."""
        weights: Dict[str, Tensor] = {}
        for i in range(len(names)):
            weights[names[i]] = tensors[i]
        scales: Dict[str, Tensor] = {}
        for i in range(len(scale_names)):
            scales[scale_names[i]] = scale_values[i]
        self.wq = []
        self.bias = []
        for i in range(len(self.names)):
            name = self.names[i]
            w = weights[name + "weight"].to(torch.float32)
            out_ch = w.shape[0]
            g = torch.ones(out_ch, dtype=torch.float32)
            b = torch.zeros(out_ch, dtype=torch.float32)
            if self.has_bias[i]:
                b = weights[name + "bias"].to(torch.float32)
            bn = self.bn_names[i]
            if bn != "":
                g = weights[bn + "weight"] / torch.sqrt(weights[bn + "running_var"]
                                                        + self.bn_eps[i])
                b = (b - weights[bn + "running_mean"]) * g + weights[bn + "bias"]
            shape = [out_ch] + [1] * (w.dim() - 1)
            wf = w * g.reshape(shape)
            key = name + "weight"
            if key in scales:
                s = scales[key].to(torch.float32) * g.abs()
            else:
                s = wf.abs().reshape(out_ch, -1).amax(1) / 127.0
            s = s.clamp_min(1e-12).to(torch.float64)
            zeros = torch.zeros(out_ch, dtype=torch.long)
            self.wq.append(torch.quantize_per_channel(wf, s, zeros, 0, torch.qint8))
            self.bias.append(b.contiguous())
        self.reset_calibration()

    @torch.jit.export
    def weight_codes(self, layer: int) -> Tensor:
        """The int8 codes of a layer's folded weights (for checks)."""
        return self.wq[layer].int_repr()

    @torch.jit.export
    def reset_calibration(self) -> None:
        """Forgets the recorded activation ranges."""
        n = len(self.ops)
        # Two separate lists: TorchScript's `[0.0] * n` twice would alias them.
        self.lo = [0.0 for _ in range(n)]
        self.hi = [0.0 for _ in range(n)]
        self.ready = False

    @torch.jit.export
    def set_reduce_range(self, on: bool) -> None:
        """7-bit activations (for CPUs whose int8 kernels can saturate at 8 bits)."""
        self.reduce_range = on

    def _conv_float(self, x: Tensor, layer: int) -> Tensor:
        geo = self.geometry[layer]
        w = self.wq[layer].dequantize()
        if geo[5] == 1:
            return F.linear(F.avg_pool2d(x, kernel_size=[x.shape[2], x.shape[3]]).flatten(1),
                            w, self.bias[layer])
        if geo[1] != geo[2] or geo[3] != geo[4] or geo[1] != geo[3]:
            x = F.pad(x, [geo[1], geo[2], geo[3], geo[4]])
            pad = 0
        else:
            pad = geo[1]
        return F.conv2d(x, w, self.bias[layer], [geo[0], geo[0]], [pad, pad])

    @torch.jit.export
    def calibrate(self, x: Tensor) -> None:
        """Runs the program in float on one batch and widens every value's range."""
        if self.nhwc:
            x = x.permute(0, 3, 1, 2).contiguous()
        values: List[Tensor] = []
        with torch.no_grad():
            for i in range(len(self.ops)):
                op = self.ops[i]
                code = op[0]
                if code == 0:
                    y = x
                elif code == 1 or code == 4:
                    y = self._conv_float(values[op[1]], op[3])
                    if op[4] == 1:
                        y = F.relu(y)
                elif code == 2:
                    y = values[op[1]] + values[op[2]]
                    if op[4] == 1:
                        y = F.relu(y)
                else:
                    y = F.pad(values[op[1]][:, :, ::2, ::2], [0, 0, 0, 0, op[2], op[2]])
                values.append(y)
                self.lo[i] = min(self.lo[i], float(y.min()))
                self.hi[i] = max(self.hi[i], float(y.max()))

    @torch.jit.export
    def finalize(self) -> None:
        """Activation scales and zero points from the recorded ranges; prepacks the
        weights for the quantized kernels."""
        levels = 127.0 if self.reduce_range else 255.0
        self.scale = torch.jit.annotate(List[float], [])
        self.zero_point = torch.jit.annotate(List[int], [])
        for i in range(len(self.ops)):
            op = self.ops[i]
            if op[0] == 3:
                # Slicing and zero padding keep the input's quantization.
                self.scale.append(self.scale[op[1]])
                self.zero_point.append(self.zero_point[op[1]])
                continue
            lo = min(self.lo[i], 0.0)
            hi = max(self.hi[i], 0.0)
            s = max((hi - lo) / levels, 1e-8)
            z = int(round(-lo / s))
            self.scale.append(s)
            self.zero_point.append(max(0, min(int(levels), z)))
        self.conv_packed = torch.jit.annotate(List[torch.classes.quantized.Conv2dPackedParamsBase], [])
        self.linear_packed = torch.jit.annotate(List[torch.classes.quantized.LinearPackedParamsBase], [])
        self.packed_index = torch.jit.annotate(List[int], [])
        for i in range(len(self.names)):
            geo = self.geometry[i]
            if geo[5] == 1:
                self.packed_index.append(len(self.linear_packed))
                self.linear_packed.append(
                    torch.ops.quantized.linear_prepack(self.wq[i], self.bias[i]))
            else:
                pad = geo[1] if geo[1] == geo[2] and geo[3] == geo[4] and geo[1] == geo[3] \
                    else 0
                self.packed_index.append(len(self.conv_packed))
                self.conv_packed.append(torch.ops.quantized.conv2d_prepack(
                    self.wq[i], self.bias[i], [geo[0], geo[0]], [pad, pad], [1, 1], 1))
        self.ready = True

    def forward(self, x: Tensor) -> Tensor:
        if not self.ready:
            raise RuntimeError("int8 program used before install(), calibrate() and finalize()")
        if self.nhwc:
            x = x.permute(0, 3, 1, 2).contiguous()
        values: List[Tensor] = []
        for i in range(len(self.ops)):
            op = self.ops[i]
            code = op[0]
            s = self.scale[i]
            z = self.zero_point[i]
            if code == 0:
                y = torch.quantize_per_tensor(x, s, z, torch.quint8)
            elif code == 1:
                layer = op[3]
                geo = self.geometry[layer]
                a = values[op[1]]
                if not (geo[1] == geo[2] and geo[3] == geo[4] and geo[1] == geo[3]):
                    a = F.pad(a, [geo[1], geo[2], geo[3], geo[4]])
                packed = self.conv_packed[self.packed_index[layer]]
                if op[4] == 1:
                    y = torch.ops.quantized.conv2d_relu(a, packed, s, z)
                else:
                    y = torch.ops.quantized.conv2d(a, packed, s, z)
            elif code == 2:
                if op[4] == 1:
                    y = torch.ops.quantized.add_relu(values[op[1]], values[op[2]], s, z)
                else:
                    y = torch.ops.quantized.add(values[op[1]], values[op[2]], s, z)
            elif code == 4:
                a = values[op[1]]
                a = F.avg_pool2d(a, kernel_size=[a.shape[2], a.shape[3]]).flatten(1)
                packed = self.linear_packed[self.packed_index[op[3]]]
                y = torch.ops.quantized.linear(a, packed, s, z)
            else:
                y = F.pad(values[op[1]][:, :, ::2, ::2], [0, 0, 0, 0, op[2], op[2]])
            values.append(y)
        return values[len(values) - 1].dequantize()


def _conv(name: str, bn: str, eps: float, stride: int, pad: List[int],
          bias: bool = False) -> Dict[str, object]:
    return {"name": name, "bn": bn, "eps": eps, "stride": stride, "pad": pad, "bias": bias}


def akamaster_program(blocks_per_stage: int) -> Int8Program:
    """akamaster CIFAR ResNet (option A) with ``blocks_per_stage`` blocks per stage."""
    eps = 1e-5
    same = [1, 1, 1, 1]
    layers = [_conv("conv1.", "bn1.", eps, 1, same)]
    ops = [[OP_INPUT, 0, 0, 0, 0], [OP_CONV, 0, 0, 0, 1]]
    planes_in = 16
    for stage, planes in enumerate((16, 32, 64)):
        for blk in range(blocks_per_stage):
            stride = 2 if blk == 0 and stage > 0 else 1
            p = f"layer{stage + 1}.{blk}."
            x = len(ops) - 1
            layers.append(_conv(p + "conv1.", p + "bn1.", eps, stride, same))
            ops.append([OP_CONV, x, 0, len(layers) - 1, 1])
            layers.append(_conv(p + "conv2.", p + "bn2.", eps, 1, same))
            ops.append([OP_CONV, len(ops) - 1, 0, len(layers) - 1, 0])
            main = len(ops) - 1
            if stride != 1 or planes_in != planes:
                ops.append([OP_SHORTCUT_A, x, planes // 4, 0, 0])
                x = len(ops) - 1
            ops.append([OP_ADD, main, x, 0, 1])
            planes_in = planes
    layers.append({"name": "linear.", "bias": True, "linear": True})
    ops.append([OP_HEAD, len(ops) - 1, 0, len(layers) - 1, 0])
    return Int8Program(layers, ops, nhwc=False)


def resnet8_program() -> Int8Program:
    """MLPerf-Tiny ResNet-8 (any width): Keras 'same' padding, 1x1 conv shortcuts."""
    eps = 1e-3
    same, down = [1, 1, 1, 1], [0, 1, 0, 1]
    layers = [_conv("conv2d.", "batch_normalization.", eps, 1, same, bias=True)]
    ops = [[OP_INPUT, 0, 0, 0, 0], [OP_CONV, 0, 0, 0, 1]]

    def conv(name: str, bn: str, stride: int, pad: List[int], src: int, relu: int) -> int:
        layers.append(_conv(name, bn, eps, stride, pad, bias=True))
        ops.append([OP_CONV, src, 0, len(layers) - 1, relu])
        return len(ops) - 1

    x = len(ops) - 1
    y = conv("conv2d_1.", "batch_normalization_1.", 1, same, x, 1)
    y = conv("conv2d_2.", "batch_normalization_2.", 1, same, y, 0)
    ops.append([OP_ADD, y, x, 0, 1])
    for c, bn in ((3, 3), (6, 5)):
        x = len(ops) - 1
        y = conv(f"conv2d_{c}.", f"batch_normalization_{bn}.", 2, down, x, 1)
        y = conv(f"conv2d_{c + 1}.", f"batch_normalization_{bn + 1}.", 1, same, y, 0)
        sc = conv(f"conv2d_{c + 2}.", "", 2, [0, 0, 0, 0], x, 0)
        ops.append([OP_ADD, y, sc, 0, 1])
    layers.append({"name": "dense.", "bias": True, "linear": True})
    ops.append([OP_HEAD, len(ops) - 1, 0, len(layers) - 1, 0])
    return Int8Program(layers, ops, nhwc=True)


def per_channel_int8(w: Tensor) -> Dict[str, Tensor]:
    """int8-affine's arithmetic (symmetric, max|w|/127 per output channel, round half
    to even): the codes and the scales, for the exporter's check."""
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(1) / 127.0
    safe = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(flat / safe[:, None]).clamp(-127, 127)
    return {"q": q.reshape(w.shape), "scale": scale}
