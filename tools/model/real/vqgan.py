"""The image tokenizer of Lumina-DiMOO: an aMUSEd-style VQ-GAN (a diffusers `VQModel`, spec §1.3, §4.2), written here
from its published architecture with the checkpoint's weight names, loaded from `vqvae/config.json` +
`vqvae/diffusion_pytorch_model.safetensors`.

    encoder.conv_in                                   3x3, in_channels -> block_out_channels[0]
    encoder.down_blocks.{i}.resnets.{j}               layers_per_block resnets per block
    encoder.down_blocks.{i}.downsamplers.0.conv       every block but the last: pad (0,1,0,1), 3x3 stride 2
    encoder.mid_block.resnets.{0,1}                   (no attention: mid_block_add_attention is false)
    encoder.conv_norm_out, encoder.conv_out           GroupNorm, SiLU, 3x3 -> latent_channels
    quant_conv                                        1x1, latent_channels -> vq_embed_dim
    quantize.embedding.weight                         [num_vq_embeddings, vq_embed_dim]
    post_quant_conv                                   1x1, vq_embed_dim -> latent_channels
    decoder.conv_in                                   3x3, latent_channels -> block_out_channels[-1]
    decoder.mid_block.resnets.{0,1}
    decoder.up_blocks.{i}.resnets.{j}                 layers_per_block + 1 resnets per block, channels reversed
    decoder.up_blocks.{i}.upsamplers.0.conv           every block but the last: nearest x2, 3x3
    decoder.conv_norm_out, decoder.conv_out           GroupNorm, SiLU, 3x3 -> out_channels
  resnet: norm1 (GroupNorm), SiLU, conv1 3x3, norm2, SiLU, conv2 3x3, + (conv_shortcut 1x1 when channels change)

GroupNorm eps 1e-6 everywhere.  Encode (spec §1.3): pixels in [0, 1] (no [-1, 1] scaling) -> encoder -> quant_conv ->
nearest codebook entry by squared L2 (first on ties; the reference takes argmin of torch.cdist, the same entry except
at exact near-ties) -> codes [B, H/16, W/16].  Decode: codebook lookup -> post_quant_conv -> decoder -> clip [0, 1].
Only the configuration the reference uses is supported; anything else (attention in the mid block, spatial norm, other
block types) is refused by `check_config`.  The per-block resnet counts are also checked against the weight names.
"""

import json
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

EPS = 1e-6


class VQConfig:
    FIELDS = ("in_channels", "out_channels", "block_out_channels", "layers_per_block", "latent_channels",
              "num_vq_embeddings", "vq_embed_dim", "norm_num_groups")

    def __init__(self, in_channels=3, out_channels=3, block_out_channels=(128, 256, 256, 512, 768), layers_per_block=2,
                 latent_channels=64, num_vq_embeddings=8192, vq_embed_dim=None, norm_num_groups=32):
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.block_out_channels = list(block_out_channels)
        self.layers_per_block = layers_per_block
        self.latent_channels = latent_channels
        self.num_vq_embeddings = num_vq_embeddings
        self.vq_embed_dim = vq_embed_dim or latent_channels
        self.norm_num_groups = norm_num_groups

    @property
    def downsample(self):
        return 2 ** (len(self.block_out_channels) - 1)

    def to_json(self):
        """A diffusers-style vqvae/config.json (the fields the loader reads and checks)."""
        n = len(self.block_out_channels)
        return {"_class_name": "VQModel", "act_fn": "silu", "in_channels": self.in_channels,
                "out_channels": self.out_channels, "block_out_channels": self.block_out_channels,
                "down_block_types": ["DownEncoderBlock2D"] * n, "up_block_types": ["UpDecoderBlock2D"] * n,
                "layers_per_block": self.layers_per_block, "latent_channels": self.latent_channels,
                "num_vq_embeddings": self.num_vq_embeddings, "vq_embed_dim": None if self.vq_embed_dim ==
                self.latent_channels else self.vq_embed_dim, "norm_num_groups": self.norm_num_groups,
                "norm_type": "group", "mid_block_add_attention": False, "lookup_from_codebook": True,
                "force_upcast": True}


def check_config(j):
    """vqvae/config.json -> VQConfig; raises ValueError naming every unsupported setting."""
    bad = []
    n = len(j.get("block_out_channels", []))
    if j.get("act_fn", "silu") != "silu":
        bad.append(f"act_fn {j.get('act_fn')}")
    if j.get("down_block_types", ["DownEncoderBlock2D"] * n) != ["DownEncoderBlock2D"] * n:
        bad.append(f"down_block_types {j.get('down_block_types')}")
    if j.get("up_block_types", ["UpDecoderBlock2D"] * n) != ["UpDecoderBlock2D"] * n:
        bad.append(f"up_block_types {j.get('up_block_types')}")
    if j.get("norm_type", "group") != "group":
        bad.append(f"norm_type {j.get('norm_type')}")
    if j.get("mid_block_add_attention", True) is not False:
        bad.append("mid_block_add_attention is not false (the aMUSEd VQ has no attention)")
    if n < 1:
        bad.append("no block_out_channels")
    if bad:
        raise ValueError("unsupported VQ configuration: " + "; ".join(bad))
    return VQConfig(**{k: j[k] for k in VQConfig.FIELDS if k in j})


def load_config(path):
    with open(path) as f:
        return check_config(json.load(f))


class Resnet(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=EPS)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, cout, eps=EPS)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Down(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=0)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Up(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class Mid(nn.Module):
    def __init__(self, c, groups):
        super().__init__()
        self.resnets = nn.ModuleList([Resnet(c, c, groups), Resnet(c, c, groups)])

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return x


class Encoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g = cfg.block_out_channels, cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.in_channels, ch[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(prev if j == 0 else c, c, g) for j in range(cfg.layers_per_block)])
            if i < len(ch) - 1:
                blk.downsamplers = nn.ModuleList([Down(c)])
            self.down_blocks.append(blk)
            prev = c
        self.mid_block = Mid(ch[-1], g)
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], cfg.latent_channels, 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for blk in self.down_blocks:
            for r in blk.resnets:
                x = r(x)
            if hasattr(blk, "downsamplers"):
                x = blk.downsamplers[0](x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        ch, g = list(reversed(cfg.block_out_channels)), cfg.norm_num_groups
        self.conv_in = nn.Conv2d(cfg.latent_channels, ch[0], 3, padding=1)
        self.mid_block = Mid(ch[0], g)
        self.up_blocks = nn.ModuleList()
        prev = ch[0]
        for i, c in enumerate(ch):
            blk = nn.Module()
            blk.resnets = nn.ModuleList([Resnet(prev if j == 0 else c, c, g) for j in range(cfg.layers_per_block + 1)])
            if i < len(ch) - 1:
                blk.upsamplers = nn.ModuleList([Up(c)])
            self.up_blocks.append(blk)
            prev = c
        self.conv_norm_out = nn.GroupNorm(g, ch[-1], eps=EPS)
        self.conv_out = nn.Conv2d(ch[-1], cfg.out_channels, 3, padding=1)

    def forward(self, x):
        x = self.mid_block(self.conv_in(x))
        for blk in self.up_blocks:
            for r in blk.resnets:
                x = r(x)
            if hasattr(blk, "upsamplers"):
                x = blk.upsamplers[0](x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class VQGAN(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quant_conv = nn.Conv2d(cfg.latent_channels, cfg.vq_embed_dim, 1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(cfg.num_vq_embeddings, cfg.vq_embed_dim)
        self.post_quant_conv = nn.Conv2d(cfg.vq_embed_dim, cfg.latent_channels, 1)
        self.decoder = Decoder(cfg)

    def encode_codes(self, pixels):
        """float32 [B, 3, H, W] in [0, 1] -> int64 [B, H/16, W/16]."""
        z = self.quant_conv(self.encoder(pixels))  # [B, D, h, w]
        book = self.quantize.embedding.weight  # [K, D]
        zz = z.permute(0, 2, 3, 1)  # [B, h, w, D]
        d = (book * book).sum(1) - 2.0 * torch.matmul(zz, book.t())  # |z|^2 is the same for every entry
        return torch.argmin(d, dim=-1)

    def decode_codes(self, codes):
        """int64 [B, h, w] -> float32 [B, 3, 16h, 16w] in [0, 1]."""
        q = self.quantize.embedding(codes).permute(0, 3, 1, 2)
        return torch.clamp(self.decoder(self.post_quant_conv(q)), 0.0, 1.0)


class VQEncodeGraph(nn.Module):
    def __init__(self, vq):
        super().__init__()
        self.vq = vq

    def forward(self, pixels):
        return self.vq.encode_codes(pixels)


class VQDecodeGraph(nn.Module):
    def __init__(self, vq):
        super().__init__()
        self.vq = vq

    def forward(self, codes):
        return self.vq.decode_codes(codes)


_RESNET = re.compile(r"^(encoder\.down_blocks|decoder\.up_blocks)\.(\d+)\.resnets\.(\d+)\.")


def load(vq_dir, dtype_check=True):
    """VQGAN from a diffusers VQModel folder (config.json + diffusion_pytorch_model.safetensors), strict names/shapes."""
    from .safetensors_io import Checkpoint
    cfg = load_config(os.path.join(vq_dir, "config.json"))
    ck = Checkpoint(vq_dir, stem="diffusion_pytorch_model")
    vq = VQGAN(cfg)
    want = vq.state_dict()
    have = set(ck.names())
    problems = []
    missing = sorted(set(want) - have)
    extra = sorted(have - set(want))
    if missing or extra:
        counts = {}
        for n in have:
            m = _RESNET.match(n)
            if m:
                counts.setdefault((m.group(1), int(m.group(2))), set()).add(int(m.group(3)))
        problems.append(f"weight names differ from the aMUSEd VQ layout: missing {missing[:5]}{'…' if len(missing) > 5 else ''}"
                        f", unexpected {extra[:5]}{'…' if len(extra) > 5 else ''}; resnets per block in the file: "
                        f"{ {f'{k[0]}.{k[1]}': len(v) for k, v in sorted(counts.items())} }")
    sd = {}
    for n, t in want.items():
        if n not in have:
            continue
        _, shape = ck.info(n)
        if tuple(shape) != tuple(t.shape):
            problems.append(f"{n}: shape {shape}, expected {tuple(t.shape)}")
            continue
        sd[n] = torch.from_numpy(ck.get(n))
    if problems:
        raise ValueError(f"{vq_dir}: " + "; ".join(problems))
    vq.load_state_dict(sd)
    vq.eval()
    return vq
