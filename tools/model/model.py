"""LLaDA-style bidirectional transformer (spec §4.1), shared by training, the ONNX graphs and the real-model exporter.

Parameter names follow the LLaDA checkpoint:
  model.transformer.wte.weight                                   [V, d]
  model.transformer.blocks.{i}.attn_norm.weight                  [d]     RMSNorm
  model.transformer.blocks.{i}.{q_proj,k_proj,v_proj,attn_out}.weight  [d, d]
  model.transformer.blocks.{i}.ff_norm.weight                    [d]
  model.transformer.blocks.{i}.{ff_proj,up_proj}.weight          [ffn, d]  (ff_proj = gate)
  model.transformer.blocks.{i}.ff_out.weight                     [d, ffn]  (down)
  model.transformer.ln_f.weight                                  [d]
  model.transformer.ff_out.weight                                [V, d]  (untied head)

Block (pre-norm): h = x + attn_out(Attn(RoPE(q(RMS(x))), RoPE(k(RMS(x))), v(RMS(x))))
                  out = h + ff_out(silu(ff_proj(RMS(h))) * up_proj(RMS(h)))
RMSNorm in fp32 (eps 1e-5); NeoX RoPE (rotate_half, inv_freq = theta^(-2i/headDim)); bidirectional attention,
scale 1/sqrt(headDim), additive -1e9 key-padding bias; no biases anywhere.

One code path (`run_layers`) serves the full step (every position recomputed) and the ML-Cache partial step
(a subset S recomputed against the cached K (after RoPE) and V of every layer, heads split: fresh rows are written into
the cache before attention).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

import fused_attention


class Config:
    def __init__(self, vocab_size, d_model=128, n_layers=4, n_heads=4, ffn_hidden=384, rope_theta=10000.0,
                 eps=1e-5, fused_attention=False):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.ffn_hidden = ffn_hidden
        self.rope_theta = rope_theta
        self.eps = eps
        # export attention as one com.microsoft MultiHeadAttention node per layer (fused_attention.py); not part of
        # the manifest's config: the same weights, another graph layout
        self.fused_attention = fused_attention
        assert d_model % n_heads == 0
        self.head_dim = d_model // n_heads
        assert self.head_dim % 2 == 0

    def to_dict(self):
        return {"nLayers": self.n_layers, "nHeads": self.n_heads, "dModel": self.d_model,
                "ffnHidden": self.ffn_hidden, "ropeTheta": self.rope_theta, "vocabSize": self.vocab_size}


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        xf = x.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, f = cfg.d_model, cfg.ffn_hidden
        self.attn_norm = RMSNorm(d, cfg.eps)
        self.q_proj = nn.Linear(d, d, bias=False)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d, bias=False)
        self.attn_out = nn.Linear(d, d, bias=False)
        self.ff_norm = RMSNorm(d, cfg.eps)
        self.ff_proj = nn.Linear(d, f, bias=False)
        self.up_proj = nn.Linear(d, f, bias=False)
        self.ff_out = nn.Linear(f, d, bias=False)


def like(x, other):
    """x in other's dtype: keeps bf16/fp16 runs in one dtype; traces to nothing (no Cast) when they already agree."""
    return x if x.dtype == other.dtype else x.to(other.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    x1 = x[..., :half]
    x2 = x[..., half:]
    return torch.cat((-x2, x1), dim=-1)


class _ScatterND(torch.autograd.Function):
    """ONNX ScatterND (one node: a copy of `data` with `updates` written at `indices`); torch's index_put exports
    through a chain of shape ops."""

    @staticmethod
    def forward(ctx, data, indices, updates):  # noqa: D102  (torch API)
        out = data.clone()
        out[tuple(indices[..., j] for j in range(indices.shape[-1]))] = updates
        return out

    @staticmethod
    def symbolic(g, data, indices, updates):  # noqa: D102
        return g.op("ScatterND", data, indices, updates)


def scatter_nd(data, indices, updates):
    return _ScatterND.apply(data, indices, updates)


class _ReshapeTail(torch.autograd.Function):
    """x [A, B, ...] -> [A, B, *tail] as one ONNX Reshape with the constant shape [0, -1, *tail] (0 keeps axis 0)."""

    @staticmethod
    def forward(ctx, x, tail):  # noqa: D102  (torch API)
        return x.reshape(x.shape[0], x.shape[1], *tail)

    @staticmethod
    def symbolic(g, x, tail):  # noqa: D102
        return g.op("Reshape", x, g.op("Constant", value_t=torch.tensor([0, -1, *tail], dtype=torch.int64)))


def reshape_tail(x, tail):
    """x.reshape(x.shape[0], x.shape[1], *tail). Traced as written, every such reshape exports a Shape, Gather,
    Unsqueeze and Concat chain that onnxruntime runs on every call (a tenth of a small partial step's time); the
    export writes one Reshape with a constant shape instead. Training keeps torch's own (differentiable) reshape."""
    if torch.onnx.is_in_onnx_export():
        return _ReshapeTail.apply(x, tuple(tail))
    return x.reshape(x.shape[0], x.shape[1], *tail)


class DimooLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = nn.Module()
        self.model.transformer = nn.ModuleDict({
            "wte": nn.Embedding(cfg.vocab_size, cfg.d_model),
            "blocks": nn.ModuleList([Block(cfg) for _ in range(cfg.n_layers)]),
            "ln_f": RMSNorm(cfg.d_model, cfg.eps),
            "ff_out": nn.Linear(cfg.d_model, cfg.vocab_size, bias=False),
        })
        hd = cfg.head_dim
        inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.reset_parameters()

    def reset_parameters(self):
        std = 0.02
        t = self.model.transformer
        nn.init.normal_(t["wte"].weight, std=std)
        nn.init.normal_(t["ff_out"].weight, std=std)
        for b in t["blocks"]:
            for lin in (b.q_proj, b.k_proj, b.v_proj, b.ff_proj, b.up_proj):
                nn.init.normal_(lin.weight, std=std)
            for lin in (b.attn_out, b.ff_out):  # scaled residual projections
                nn.init.normal_(lin.weight, std=std / math.sqrt(2 * self.cfg.n_layers))

    # ------------------------------------------------------------------ pieces
    @property
    def transformer(self):
        return self.model.transformer

    def rope_cos_sin(self, position_ids):
        """position_ids int64 [R, L] -> cos, sin float32 [R, L, 1, headDim] (broadcast over the heads)."""
        freqs = position_ids.float().unsqueeze(-1) * self.inv_freq  # [R, L, hd/2]
        emb = torch.cat((freqs, freqs), dim=-1).unsqueeze(2)
        return emb.cos(), emb.sin()

    def heads(self, x):
        """[R, Q, d] -> [R, Q, H, hd]"""
        return reshape_tail(x, (self.cfg.n_heads, self.cfg.head_dim))

    @staticmethod
    def rope(xh, cos, sin):
        """NeoX rotary on rows [R, Q, H, hd] at the positions of cos/sin [R, Q, 1, hd] (broadcast over the heads)."""
        return xh * like(cos, xh) + rotate_half(xh) * like(sin, xh)

    def split_heads(self, x):
        """[R, L, d] -> [R, H, L, hd]"""
        return self.heads(x).transpose(1, 2)

    def merge_heads(self, x):
        """[R, H, L, hd] -> [R, L, d]"""
        return reshape_tail(x.transpose(1, 2), (self.cfg.d_model,))

    @staticmethod
    def key_bias(attention_mask):
        """int64 [R, L] (1 real, 0 pad) -> additive float32 bias [R, 1, 1, L] (0 or -1e9)."""
        m = (attention_mask > 0).float()
        return ((1.0 - m) * -1e9).unsqueeze(1).unsqueeze(2)

    def scatter_index(self, query_index):
        """[R, S] row indices -> ScatterND indices [R, H, S, 3] = (row, head, query_index) into a [R, H, L, hd] cache."""
        R, S = query_index.shape
        H = self.cfg.n_heads
        r = torch.arange(R, device=query_index.device).view(R, 1, 1, 1).expand(R, H, S, 1)
        h = torch.arange(H, device=query_index.device).view(1, H, 1, 1).expand(R, H, S, 1)
        return torch.cat([r, h, query_index.view(R, 1, S, 1).expand(R, H, S, 1)], -1)

    def run_layers(self, input_ids, positions, attention_mask, query_index=None, past=None, collect_kv=False,
                   merged_kv=False):
        """Shared transformer body.

        Full step:    query_index=None, past=None; the queries are all L positions, keys = their own K/V.
        Partial step: input_ids/positions/query_index [R, S]; past = per layer (K after RoPE, V), each [R, H, L, hd]
                      (heads split, docs/model-interface.md §4.2); per layer the fresh K/V rows are written into a copy
                      of the cache at query_index (ScatterND), then q(S) attends to all L keys. The cache keeps K
                      after RoPE and heads split, so a partial step neither re-rotates nor re-lays-out the cached keys
                      (the reference keeps K before RoPE and rotates all L keys again each step; the values are the
                      same, elementwise).
        Returns (hidden after ln_f [R, Q, d], per layer the step's own (K after RoPE, V) [R, H, Q, hd] when collect_kv;
        with merged_kv (a partial step) instead the whole updated cache [R, H, L, hd]: the ScatterND outputs attention
        reads anyway, so returning them costs no extra work).
        """
        t = self.transformer
        x = t["wte"](input_ids)
        cos, sin = self.rope_cos_sin(positions)
        bias = self.key_bias(attention_mask)
        scale = 1.0 / math.sqrt(self.cfg.head_dim)
        kvs = []
        if query_index is not None:
            index = self.scatter_index(query_index)
        fused = self.cfg.fused_attention
        if fused:
            bias = fused_attention.query_bias(bias, x)
        for i, b in enumerate(t["blocks"]):
            h = b.attn_norm(x)
            qh = self.rope(self.heads(b.q_proj(h)), cos, sin)
            qh = reshape_tail(qh, (self.cfg.d_model,)) if fused else qh.transpose(1, 2)
            kh = self.rope(self.heads(b.k_proj(h)), cos, sin).transpose(1, 2)
            vh = self.split_heads(b.v_proj(h))
            if collect_kv and not merged_kv:
                kvs.append((kh, vh))
            if past is not None:
                kh = scatter_nd(past[i][0], index, kh)
                vh = scatter_nd(past[i][1], index, vh)
                if merged_kv:
                    kvs.append((kh, vh))
            if fused:
                o = fused_attention.multi_head_attention(qh, kh, vh, bias, self.cfg.n_heads, scale)
            else:
                att = torch.matmul(qh, kh.transpose(-1, -2)) * scale + like(bias, qh)
                att = torch.softmax(att, dim=-1)
                o = self.merge_heads(torch.matmul(att, vh))
            x = x + b.attn_out(o)
            h2 = b.ff_norm(x)
            x = x + b.ff_out(F.silu(b.ff_proj(h2)) * b.up_proj(h2))
        return t["ln_f"](x), kvs

    def head_slice_weight(self, vocab_range):
        """Rows [lo, hi) of the head weight via arange + index_select (dynamic in ONNX)."""
        idx = torch.arange(vocab_range[0], vocab_range[1], device=vocab_range.device)
        return torch.index_select(self.transformer["ff_out"].weight, 0, idx)

    # ------------------------------------------------------------------ entry points
    def forward_logits(self, input_ids, position_ids, attention_mask):
        h, _ = self.run_layers(input_ids, position_ids, attention_mask)
        return self.transformer["ff_out"](h)

    def forward(self, input_ids, position_ids, attention_mask):
        return self.forward_logits(input_ids, position_ids, attention_mask)

    def full_step(self, input_ids, position_ids, attention_mask, vocab_range):
        """-> slice logits [R, L, K], per layer (K after RoPE, V) [R, H, L, hd]"""
        h, kvs = self.run_layers(input_ids, position_ids, attention_mask, collect_kv=True)
        return torch.matmul(h, self.head_slice_weight(vocab_range).t()), kvs

    def partial_step(self, input_ids, query_index, position_ids, attention_mask, vocab_range, past):
        """past: per layer (K after RoPE, V) [R, H, L, hd] -> slice logits [R, S, K], per layer the fresh (K, V) rows
        [R, H, S, hd] at query_index"""
        h, kvs = self.run_layers(input_ids, position_ids, attention_mask, query_index=query_index, past=past,
                                 collect_kv=True)
        return torch.matmul(h, self.head_slice_weight(vocab_range).t()), kvs

    def partial_step_merged(self, input_ids, query_index, position_ids, attention_mask, vocab_range, past):
        """As partial_step, returning per layer the updated cache (K after RoPE, V) [R, H, L, hd] instead of the fresh
        rows: the device-resident ML-Cache keeps it on the accelerator from one partial step to the next."""
        h, kvs = self.run_layers(input_ids, position_ids, attention_mask, query_index=query_index, past=past,
                                 merged_kv=True)
        return torch.matmul(h, self.head_slice_weight(vocab_range).t()), kvs

    def hidden_at(self, input_ids, position_ids, attention_mask, gather_index):
        """Training helper: final hidden at flat positions gather_index (into R*L)."""
        h, _ = self.run_layers(input_ids, position_ids, attention_mask)
        return h.reshape(-1, h.shape[-1])[gather_index]


# ---------------------------------------------------------------------------------------------------------------
# sampling rule of docs/model-interface.md §3 (float32), shared by the graphs and the Python samplers

def sample_rule(target_logits, guidance_weights, temperature, uniforms, exact=True):
    """target_logits [R, N, K], guidance_weights [B, G], temperature [B], uniforms [B, N]
    -> sample_index int64 [B, N], sample_prob float32 [B, N].

    exact: the CDF and the confidence in float64 (§3, what libs/diffusion computes). False: the device draw (§3.1),
    the same rule in float32 throughout, for a provider without float64 (WebGPU), which would otherwise copy the
    guided logits [B, N, K] to the host at every draw."""
    B = guidance_weights.shape[0]
    G = guidance_weights.shape[1]
    N = target_logits.shape[1]
    K = target_logits.shape[2]
    wide = torch.float64 if exact else torch.float32
    lg = target_logits.reshape(B, G, N, K)
    z = (lg * guidance_weights.unsqueeze(-1).unsqueeze(-1)).sum(1)  # [B, N, K]
    m = z.max(dim=-1, keepdim=True)[0]
    greedy = torch.argmax(z, dim=-1)  # first index on ties
    tau = temperature.unsqueeze(-1).unsqueeze(-1).to(wide)  # [B, 1, 1]
    is_zero = tau == 0
    tau_safe = torch.where(is_zero, torch.ones_like(tau), tau)
    # the exact rule sums in float64: float32 sums depend on the kernel's reduction order, and a one-ulp difference in
    # p reorders near-tied confidences (docs/model-interface.md §3)
    zd = (z - m).to(wide)
    e = torch.exp(zd / tau_safe)
    c = torch.cumsum(e, dim=-1)
    thresh = uniforms.unsqueeze(-1).to(wide) * c[..., -1:]
    # counted in floating point (exact: K < 2^24): an int64 count is a kernel a GPU provider takes, and onnxruntime's
    # WebGPU provider would copy the [B, N, K] comparison to the device and the int64 result back for the sum
    k = (c < thresh).to(wide).sum(-1).to(torch.int64)
    kmax = (torch.ones_like(greedy) * K) - 1
    k = torch.minimum(k, kmax)
    idx = torch.where(is_zero.squeeze(-1), greedy, k)
    zk = torch.gather(zd, 2, idx.unsqueeze(-1))
    if exact:
        return idx, (torch.exp(zk).squeeze(-1) / torch.exp(zd).sum(-1)).float()
    zk = zk.squeeze(-1)
    # float32: p = e_k / (n + s), n the count of terms at the max (d = 0, e = 1 exactly) and s the sum of the others;
    # for p ≥ ½ (then k is the unique max) as 1 − s / (1 + s), whose small term keeps its relative precision. A
    # near-certain draw (s ≪ 1) then rounds as the exact rule rounds it, so the near-ties among confident positions
    # that LLaDA's commit order breaks come out the same on both rules. Float compares and a scalar zero only: an int64
    # one-hot or a zeros tensor would be built on the host and copied to the device at [B, N, K]
    at_max = zd == 0
    rest = torch.where(at_max, torch.tensor(0.0), torch.exp(zd)).sum(-1)
    total = at_max.to(wide).sum(-1) + rest
    direct = torch.exp(zk) / total
    return idx, torch.where(direct >= 0.5, 1.0 - rest / total, direct)
