#!/usr/bin/env python3
"""PyTorch eager SparK encoder, masked-dense: the baseline of cloze's sparse SparK encoder.

Our SparK encoders (the README's SparK section, src/models/spark/encoders.ts, presets
spark-resnet-mini and spark-convnext-mini: widths 32, 64, 128, 256, one input
channel, stage i at stride 2^i) in plain torch.nn, run the way SparK's
official code simulates sparsity ("masked-dense"): every conv runs densely on
the whole map and its output is multiplied by the mask of its scale, and so
is every LayerNorm and pointwise Linear; BatchNorm gathers the visible
positions, normalises them with BatchNorm1d (training-mode statistics over
visible positions only) and scatters them back into zeros, as SparK's
SparseBatchNorm2d. The input is multiplied by the pixel mask first.
- ResNet (depths 1, 1, 1, 1): conv3×3 s1 (no bias) → BN → ReLU; BasicBlocks
  conv3×3(stride)-BN-ReLU-conv3×3-BN + shortcut, ReLU; a stage's first block
  (stages 1..) strides 2 with a 1×1 stride-2 conv (no bias) + BN shortcut.
- ConvNeXt-style (depths 1, 1, 2, 1): conv3×3 s1 (bias) → channel LayerNorm
  (eps 1e-6); before stages 1..: channel LayerNorm → conv2×2 s2 (bias);
  blocks: depthwise 7×7 (padding 3, bias) → LayerNorm → Linear C→4C → GELU
  (erf) → Linear 4C→C, plus the input (no layer scale, no drop path). As in
  ConvNeXt and SparK, the LayerNorm and the MLP of a block run channels-last.

Masks as src/models/spark/mask-context.ts: a coarse grid of side size/8, per image
keep = round(g²·(1 − ratio)) cells (lowest of uniform noise), upsampled by
nearest repetition to every scale. Each step draws a fresh mask (its
upsampling and the visible-index lists, computed once per scale and shared
by every layer of that scale, are timed with the step), runs the encoder
forward on a fixed random batch, loss = sum over stages of the mean of the
stage's output, and backward; no optimizer step. --dense runs the plain dense
encoder (no mask, BatchNorm2d over the whole map) for reference.

Prints one JSON object on the last stdout line: median ms per step over the
timed reps, images_per_s, and visible_fraction (the measured share of
visible pixels); {"ok": false, "error": ...} on failure.
"""
import argparse
import json
import math
import statistics
import sys

from bench_common import step_report, time_steps

WIDTHS = [32, 64, 128, 256]
DEPTHS = {"resnet": [1, 1, 1, 1], "convnext": [1, 1, 2, 1]}
CHANNELS = 1
DOWNSAMPLE = 2 ** (len(WIDTHS) - 1)  # the mask cell side in pixels


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", choices=sorted(DEPTHS), default="resnet")
    p.add_argument("--size", type=int, default=32, help="input side, a multiple of 8")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--ratio", type=float, default=0.6, help="share of coarse cells masked")
    p.add_argument("--reps", type=int, default=7, help="timed steps")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dense", action="store_true", help="no mask at all: the plain dense encoder")
    return p.parse_args()


def js_round(v):
    """Math.round of JavaScript (half up), not Python's half-to-even."""
    return math.floor(v + 0.5)


def check(a):
    """The first problem with the flags, or None."""
    if a.size <= 0 or a.size % DOWNSAMPLE:
        return f"--size ({a.size}) must be a positive multiple of {DOWNSAMPLE}"
    for name in ("batch", "threads", "reps"):
        if getattr(a, name) <= 0:
            return f"--{name} must be positive, got {getattr(a, name)}"
    if a.warmup < 0:
        return f"--warmup must be >= 0, got {a.warmup}"
    g = a.size // DOWNSAMPLE
    if not a.dense and (not 0 <= a.ratio < 1 or js_round(g * g * (1 - a.ratio)) < 1):
        return f"--ratio ({a.ratio}) must be in [0, 1) and keep at least one of the {g * g} cells"
    return None


class MaskCtx:
    """One step's masks: float maps [B, 1, H_s, W_s], channels-last [B, H_s, W_s, 1] and visible indices per scale.

    dense=True: no mask at all, every op runs unmasked.
    """

    def __init__(self, torch, B, size, ratio, gen, dense):
        self.dense = dense
        self.fmask, self.fmask_last, self.idx = [], [], []
        if dense:
            return
        g = size // DOWNSAMPLE
        L = g * g
        keep = js_round(L * (1 - ratio))
        order = torch.rand(B, L, generator=gen).argsort(dim=1)
        vis = torch.zeros(B, L).scatter_(1, order[:, :keep], 1.0).view(B, 1, g, g)
        for s in range(len(WIDTHS)):
            f = DOWNSAMPLE >> s
            m = vis.repeat_interleave(f, dim=2).repeat_interleave(f, dim=3)
            self.fmask.append(m)
            self.fmask_last.append(m.permute(0, 2, 3, 1))
            self.idx.append(m[:, 0].nonzero(as_tuple=True))  # (b, h, w) of the visible sites

    def remask(self, x, s):
        """[B, C, H_s, W_s] re-multiplied by scale s's mask."""
        return x if self.dense else x * self.fmask[s]

    def remask_last(self, x, s):
        """[B, H_s, W_s, C] re-multiplied by scale s's mask."""
        return x if self.dense else x * self.fmask_last[s]


def build(torch, a):
    nn = torch.nn
    F = torch.nn.functional

    class MConv(nn.Conv2d):
        """Dense conv on the whole map, then re-masked at its output scale (SparK's SparseConv2d)."""

        def __init__(self, cin, cout, k, stride, bias=False, depthwise=False):
            pad = (k - 1) // 2 if stride == 1 else (1 if k == 3 else 0)
            super().__init__(cin, cout, k, stride, pad, groups=cin if depthwise else 1, bias=bias)
            # Kaiming-normal, fan-out, ReLU gain, as src/models/spark/layers.ts (depthwise: fan-out k·k).
            fan_out = cout * k * k / (cout if depthwise else 1)
            nn.init.normal_(self.weight, std=math.sqrt(2.0 / fan_out))
            if self.bias is not None:
                nn.init.zeros_(self.bias)

        def forward(self, x, ctx, s):
            """x at scale s → output at scale s (stride 1) or s + 1 (stride 2)."""
            return ctx.remask(super().forward(x), s + (self.stride[0] == 2))

    class MBatchNorm(nn.BatchNorm1d):
        """SparK's SparseBatchNorm2d: gather visible sites → BatchNorm1d → scatter back into zeros."""

        def forward(self, x, ctx, s):
            if ctx.dense:
                return F.batch_norm(
                    x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
                )
            ii = ctx.idx[s]
            bhwc = x.permute(0, 2, 3, 1)
            nc = super().forward(bhwc[ii])
            out = torch.zeros_like(bhwc)
            out[ii] = nc
            return out.permute(0, 3, 1, 2)

    class ChannelLN(nn.LayerNorm):
        """LayerNorm over channels at every site of a [B, C, H, W] map, then re-masked."""

        def __init__(self, c):
            super().__init__(c, eps=1e-6)

        def forward(self, x, ctx, s):
            y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
            return ctx.remask(y.permute(0, 3, 1, 2), s)

    def linear(cin, cout):
        m = nn.Linear(cin, cout)
        nn.init.trunc_normal_(m.weight, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(m.bias)
        return m

    class BasicBlock(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = MConv(cin, cout, 3, stride)
            self.bn1 = MBatchNorm(cout)
            self.conv2 = MConv(cout, cout, 3, 1)
            self.bn2 = MBatchNorm(cout)
            project = stride != 1 or cin != cout
            self.downsample_conv = MConv(cin, cout, 1, stride) if project else None
            self.downsample_bn = MBatchNorm(cout) if project else None

        def forward(self, x, ctx, s):
            so = s + (self.conv1.stride[0] == 2)
            h = F.relu(self.bn1(self.conv1(x, ctx, s), ctx, so))
            y = self.bn2(self.conv2(h, ctx, so), ctx, so)
            sc = x if self.downsample_conv is None else self.downsample_bn(self.downsample_conv(x, ctx, s), ctx, so)
            return F.relu(y + sc), so

    class SparkResNet(nn.Module):
        def __init__(self):
            super().__init__()
            w = WIDTHS
            self.stem_conv = MConv(CHANNELS, w[0], 3, 1)
            self.stem_bn = MBatchNorm(w[0])
            self.stages = nn.ModuleList(
                nn.ModuleList(
                    BasicBlock(w[i - 1] if j == 0 and i > 0 else w[i], w[i], 2 if j == 0 and i > 0 else 1)
                    for j in range(d)
                )
                for i, d in enumerate(DEPTHS["resnet"])
            )

        def forward(self, x, ctx):
            h = F.relu(self.stem_bn(self.stem_conv(x, ctx, 0), ctx, 0))
            s, outs = 0, []
            for stage in self.stages:
                for blk in stage:
                    h, s = blk(h, ctx, s)
                outs.append(h)
            return outs

    class ConvNeXtBlock(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.dwconv = MConv(c, c, 7, 1, bias=True, depthwise=True)
            self.norm = nn.LayerNorm(c, eps=1e-6)
            self.pwconv1 = linear(c, 4 * c)
            self.pwconv2 = linear(4 * c, c)

        def forward(self, x, ctx, s):
            h = self.dwconv(x, ctx, s).permute(0, 2, 3, 1)  # channels-last, as ConvNeXt
            h = ctx.remask_last(self.norm(h), s)
            h = F.gelu(ctx.remask_last(self.pwconv1(h), s))
            h = ctx.remask_last(self.pwconv2(h), s)
            return x + h.permute(0, 3, 1, 2)

    class Downsample(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.norm = ChannelLN(cin)
            self.conv = MConv(cin, cout, 2, 2, bias=True)

        def forward(self, x, ctx, s):
            return self.conv(self.norm(x, ctx, s), ctx, s)

    class SparkConvNeXt(nn.Module):
        def __init__(self):
            super().__init__()
            w = WIDTHS
            self.stem_conv = MConv(CHANNELS, w[0], 3, 1, bias=True)
            self.stem_norm = ChannelLN(w[0])
            self.downsample = nn.ModuleList(Downsample(w[i], w[i + 1]) for i in range(len(w) - 1))
            self.stages = nn.ModuleList(
                nn.ModuleList(ConvNeXtBlock(w[i]) for _ in range(d)) for i, d in enumerate(DEPTHS["convnext"])
            )

        def forward(self, x, ctx):
            h = self.stem_norm(self.stem_conv(x, ctx, 0), ctx, 0)
            outs = []
            for i, stage in enumerate(self.stages):
                if i > 0:
                    h = self.downsample[i - 1](h, ctx, i - 1)
                for blk in stage:
                    h = blk(h, ctx, i)
                outs.append(h)
            return outs

    return SparkResNet() if a.arch == "resnet" else SparkConvNeXt()


def run(a):
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        return {"ok": False, "error": f"cannot import torch with {sys.executable}: {e}"}
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model = build(torch, a)
    model.train()
    B = a.batch
    images = torch.randn(B, CHANNELS, a.size, a.size)
    gen = torch.Generator().manual_seed(a.seed + 1)
    params = list(model.parameters())
    losses, visible = [], []

    def step():
        model.zero_grad(set_to_none=True)
        ctx = MaskCtx(torch, B, a.size, a.ratio, gen, a.dense)
        x = images if a.dense else images * ctx.fmask[0]
        outs = model(x, ctx)
        loss = sum(o.mean() for o in outs)
        loss.backward()
        losses.append(loss.item())
        visible.append(1.0 if a.dense else ctx.fmask[0].mean().item())

    t = time_steps(step, a.warmup, a.reps)
    med = t["median_ms"]
    return step_report(
        torch, params, t, losses,
        arch=a.arch,
        mode="dense" if a.dense else "masked-dense",
        size=a.size,
        batch=B,
        ratio=0.0 if a.dense else a.ratio,
        widths=WIDTHS,
        depths=DEPTHS[a.arch],
        images_per_s=B / (med / 1e3),
        visible_fraction=statistics.mean(visible),
    )


def main():
    a = parse()
    problem = check(a)
    if problem:
        print(json.dumps({"ok": False, "error": problem}))
        sys.exit(2)
    try:
        out = run(a)
    except Exception as e:  # noqa: BLE001 - reported to the caller
        out = {"ok": False, "error": f"{e.__class__.__name__}: {e}"}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
