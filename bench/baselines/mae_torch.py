#!/usr/bin/env python3
"""PyTorch eager MAE training step: the baseline of cloze's MAE step benchmark.

Our MAE model (the README's image pre-training section) in plain torch.nn (no timm): images [B, C, H, W]
are patchified in MAE's order (einsum 'nchpwq->nhwpqc') to [B, L, p·p·C],
embedded by one Linear, given fixed 2D sin-cos position embeddings (MAE's
get_2d_sincos_pos_embed; a zero row for the optional CLS token) and randomly
masked (noise ~ U(0, 1), argsort, keep the first int(L·(1 − ratio))). The
encoder runs pre-LN blocks (LayerNorm eps 1e-6; separate q/k/v Linears; eager
softmax(q·kᵀ/√Dh)·v, as torch 1.13 has no scaled_dot_product_attention; MLP
4·D with erf GELU) on the visible tokens, then a final LayerNorm. The decoder
projects to Dd, appends copies of one learned mask token, unshuffles with
ids_restore, adds its own fixed sin-cos position embedding, runs its blocks,
a LayerNorm and a Linear to p·p·C pixels. The loss is MSE against per-patch
normalised pixels (unbiased variance, eps 1e-6, as MAE's norm_pix_loss),
averaged over pixels, then over the masked patches only. One step is
forward, backward and torch.optim.AdamW(lr 1.5e-4, betas (0.9, 0.95),
weight decay 0.05 on weight matrices and tokens; biases and norms undecayed
as in MAE's add_weight_decay).

Two encoder-only modes give the "encoder cost of MAE against SimMIM":
--simmim-encoder times the encoder's forward + backward on all L tokens (no
masking, no decoder, loss = mean of the output); --mae-encoder the same on
the visible tokens after random masking. Neither runs an optimizer step.
Both include the patch embedding of all L patches, which MAE runs before
masking too.

Prints one JSON object on the last stdout line: ms per step (median of the
timed steps), tokens_per_s counting all B·L image patches of a step (so every
mode is credited per image, the unit training progresses in), and
encoder_tokens_per_s counting the tokens the encoder actually ran on.
peak_rss_bytes and step_rss_growth_bytes as in mlm_torch.py.
"""
import argparse
import json
import math
import sys

from bench_common import fail, step_report, time_steps


def parse():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--img", type=int, default=28)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--chans", type=int, default=1)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dec-dim", type=int, default=64)
    p.add_argument("--dec-depth", type=int, default=2)
    p.add_argument("--dec-heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--ratio", type=float, default=0.75)
    p.add_argument("--cls", action="store_true", help="prepend a CLS token (zero position row)")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--simmim-encoder", action="store_true", help="time only the encoder on all L tokens")
    mode.add_argument("--mae-encoder", action="store_true", help="time only the encoder on the visible tokens")
    return p.parse_args()


def check(a):
    """The first problem with the flags, or None."""
    if a.img <= 0 or a.patch <= 0 or a.img % a.patch:
        return f"--img ({a.img}) must be a positive multiple of --patch ({a.patch})"
    for name in ("chans", "batch", "depth", "heads", "dec_dim", "dec_heads", "threads"):
        if getattr(a, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive, got {getattr(a, name)}"
    if a.dec_depth < 0 or a.steps <= 0 or a.warmup < 0:
        return "--dec-depth and --warmup must be >= 0, --steps > 0"
    # The 2D sin-cos table splits D in half per axis and each half into sin and cos.
    for name, d, h in (("dim", a.dim, a.heads), ("dec-dim", a.dec_dim, a.dec_heads)):
        if d % 4:
            return f"--{name} ({d}) must be a multiple of 4 for the 2D sin-cos position embedding"
        if d % h:
            return f"--{name} ({d}) must be a multiple of its heads ({h})"
    L = (a.img // a.patch) ** 2
    if not 0 <= a.ratio < 1 or int(L * (1 - a.ratio)) < 1:
        return f"--ratio ({a.ratio}) must be in [0, 1) and keep at least one of the {L} patches"
    return None


def sincos_1d(torch, dim, pos):
    """[M] positions → [M, dim]: sin then cos of pos·ω, ω = 1/10000^(2i/dim) (MAE's, in float64)."""
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.reshape(-1, 1).double() * omega.reshape(1, -1)
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_2d(torch, dim, grid, cls):
    """[grid·grid (+1), dim] fixed position table, row-major over (h, w), as MAE's get_2d_sincos_pos_embed.

    MAE builds np.meshgrid(grid_w, grid_h), so its "emb_h" half is in fact
    indexed by the column (w) and the second half by the row (h); kept as is
    so the table matches MAE's bit for bit.
    """
    r = torch.arange(grid, dtype=torch.float64)
    hh, ww = torch.meshgrid(r, r, indexing="ij")
    emb = torch.cat([sincos_1d(torch, dim // 2, ww), sincos_1d(torch, dim // 2, hh)], dim=1)
    if cls:
        emb = torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb], dim=0)
    return emb.float().unsqueeze(0)


def build(torch, a):
    nn = torch.nn
    F = torch.nn.functional
    p, C = a.patch, a.chans
    grid = a.img // p
    L = grid * grid
    Lk = int(L * (1 - a.ratio))
    P = p * p * C
    ncls = 1 if a.cls else 0

    class Block(nn.Module):
        """[B, N, D] → [B, N, D]: x + proj(attn(LN(x))), then x + fc2(GELU(fc1(LN(x))))."""

        def __init__(self, D, H):
            super().__init__()
            self.H, self.Dh = H, D // H
            self.norm1 = nn.LayerNorm(D, eps=1e-6)
            self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
            self.proj = nn.Linear(D, D)
            self.norm2 = nn.LayerNorm(D, eps=1e-6)
            self.fc1 = nn.Linear(D, 4 * D)
            self.fc2 = nn.Linear(4 * D, D)

        def forward(self, x):
            B, N, D = x.shape
            h = self.norm1(x)
            split = lambda t: t.view(B, N, self.H, self.Dh).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.q(h)), split(self.k(h)), split(self.v(h))
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.Dh)
            ctx = torch.matmul(torch.softmax(s, dim=-1), v).transpose(1, 2).reshape(B, N, D)
            x = x + self.proj(ctx)
            return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    class Mae(nn.Module):
        def __init__(self):
            super().__init__()
            D, Dd = a.dim, a.dec_dim
            self.patch_embed = nn.Linear(P, D)
            self.register_buffer("pos_embed", sincos_2d(torch, D, grid, a.cls))
            self.cls_token = nn.Parameter(torch.zeros(1, 1, D)) if a.cls else None
            self.blocks = nn.ModuleList([Block(D, a.heads) for _ in range(a.depth)])
            self.norm = nn.LayerNorm(D, eps=1e-6)
            self.decoder_embed = nn.Linear(D, Dd)
            self.mask_token = nn.Parameter(torch.zeros(1, 1, Dd))
            self.register_buffer("decoder_pos_embed", sincos_2d(torch, Dd, grid, a.cls))
            self.decoder_blocks = nn.ModuleList([Block(Dd, a.dec_heads) for _ in range(a.dec_depth)])
            self.decoder_norm = nn.LayerNorm(Dd, eps=1e-6)
            self.decoder_pred = nn.Linear(Dd, P)
            # MAE's initialisation: xavier-uniform Linears, zero biases, tokens N(0, .02).
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.normal_(self.mask_token, std=0.02)
            if self.cls_token is not None:
                nn.init.normal_(self.cls_token, std=0.02)

        @staticmethod
        def patchify(imgs):
            """[B, C, H, W] → [B, L, p·p·C], MAE's order."""
            B = imgs.shape[0]
            x = imgs.reshape(B, C, grid, p, grid, p)
            x = torch.einsum("nchpwq->nhwpqc", x)
            return x.reshape(B, L, P)

        @staticmethod
        def random_masking(x):
            """[B, L, D] → visible [B, Lk, D], mask [B, L] (1 = removed), ids_restore [B, L]."""
            B, _, D = x.shape
            noise = torch.rand(B, L)
            ids_shuffle = torch.argsort(noise, dim=1)
            ids_restore = torch.argsort(ids_shuffle, dim=1)
            ids_keep = ids_shuffle[:, :Lk]
            visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(B, Lk, D))
            mask = torch.ones(B, L)
            mask[:, :Lk] = 0
            return visible, torch.gather(mask, 1, ids_restore), ids_restore

        def forward_encoder(self, patches, masked):
            """[B, L, P] → latent [B, ncls + Lk (or L), D], mask, ids_restore (None when not masked)."""
            x = self.patch_embed(patches) + self.pos_embed[:, ncls:, :]
            mask = ids_restore = None
            if masked:
                x, mask, ids_restore = self.random_masking(x)
            if self.cls_token is not None:
                cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)
                x = torch.cat([cls, x], dim=1)
            for blk in self.blocks:
                x = blk(x)
            return self.norm(x), mask, ids_restore

        def forward_decoder(self, x, ids_restore):
            """latent [B, ncls + Lk, D] → predicted pixels [B, L, P]."""
            x = self.decoder_embed(x)
            B, _, Dd = x.shape
            tokens = torch.cat([x[:, ncls:, :], self.mask_token.expand(B, L - Lk, Dd)], dim=1)
            tokens = torch.gather(tokens, 1, ids_restore.unsqueeze(-1).expand(B, L, Dd))
            x = torch.cat([x[:, :ncls, :], tokens], dim=1) + self.decoder_pos_embed
            for blk in self.decoder_blocks:
                x = blk(x)
            return self.decoder_pred(self.decoder_norm(x))[:, ncls:, :]

        @staticmethod
        def forward_loss(target, pred, mask):
            """MSE against per-patch normalised pixels, mean over pixels, then over masked patches."""
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6) ** 0.5
            per_patch = ((pred - target) ** 2).mean(dim=-1)
            return (per_patch * mask).sum() / mask.sum()

        def forward(self, imgs):
            patches = self.patchify(imgs)
            latent, mask, ids_restore = self.forward_encoder(patches, masked=True)
            return self.forward_loss(patches, self.forward_decoder(latent, ids_restore), mask)

    return Mae(), L, Lk


def main():
    a = parse()
    problem = check(a)
    if problem:
        print(json.dumps({"ok": False, "error": problem}))
        sys.exit(2)
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - reported to the caller
        fail(f"cannot import torch with {sys.executable}: {e}")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    model, L, Lk = build(torch, a)
    model.train()
    B = a.batch
    imgs = torch.randn(B, a.chans, a.img, a.img)
    mode = "simmim-encoder" if a.simmim_encoder else "mae-encoder" if a.mae_encoder else "mae"
    encoder_tokens = (L if a.simmim_encoder else Lk) + (1 if a.cls else 0)

    params = [p for p in model.parameters()]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1.5e-4,
        betas=(0.9, 0.95),
    )
    losses = []

    def full_step():
        opt.zero_grad(set_to_none=True)
        loss = model(imgs)
        loss.backward()
        opt.step()
        losses.append(loss.item())

    def encoder_step():
        model.zero_grad(set_to_none=True)
        latent, _, _ = model.forward_encoder(model.patchify(imgs), masked=a.mae_encoder)
        loss = latent.mean()
        loss.backward()
        losses.append(loss.item())

    step = full_step if mode == "mae" else encoder_step
    t = time_steps(step, a.warmup, a.steps)
    med = t["median_ms"]
    print(json.dumps(step_report(torch, params, t, losses,
        mode=mode,
        encoder_params=sum(
            p.numel() for n, p in model.named_parameters() if not n.startswith(("decoder", "mask_token"))
        ),
        batch=B,
        tokens=L,
        kept_tokens=Lk,
        encoder_tokens=encoder_tokens,
        ms_per_step=med,
        tokens_per_s=B * L / (med / 1e3),
        encoder_tokens_per_s=B * encoder_tokens / (med / 1e3),
        images_per_s=B / (med / 1e3),
    )))


if __name__ == "__main__":
    main()
