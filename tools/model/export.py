"""ONNX export of the graphs of docs/model-interface.md §4.1–4.6 (opset 17, dynamic R/L/N/S/B/G/H/W/K axes).

The transformer graphs store their weight matrices as float16 initializers followed by a Cast to float32 (the
weights are rounded to float16 values before evaluation and export, so the PyTorch model and the graphs compute the
same float32 function; all activations are float32).  The VQ graphs keep float32 codebooks.
"""

import math
import os

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import helper, numpy_helper, TensorProto
from torch import nn

import vq as vqmod
from conformance import RESIDENT_GRAPHS, kv_names  # the interface's names, defined once beside its checker
import fused_attention
from model import like, reshape_tail, sample_rule, scatter_nd

OPSET = 17

DENOISE_IN = ["input_ids", "position_ids", "attention_mask", "target_positions", "guidance_weights", "vocab_range",
              "temperature", "uniforms"]
DENOISE_OUT = ["sample_index", "sample_prob", "row_max", "target_logits"]  # + kv_names("present", nLayers)
PARTIAL_IN = ["input_ids", "query_index", "position_ids", "attention_mask", "vocab_range"]  # + kv_names("past", ...)
PARTIAL_OUT = ["logits", "row_max", "new_kv"]
# the device-resident ML-Cache (§4.7): a partial step that returns the updated cache, and the cache's regrouping
RESIDENT_IN = ["input_ids", "query_index", "position_ids", "attention_mask", "vocab_range", "target_source",
               "past_target_logits"]  # + kv_names("past", nLayers)
RESIDENT_OUT = ["row_max", "present_target_logits"]  # + kv_names("present", nLayers)
GATHER_IN = ["rows", "past_target_logits"]  # + kv_names("past", nLayers)
CONCAT_IN = ["past_target_logits"]  # + kv_names("past", nLayers) + ["more_target_logits"] + kv_names("more", ...)
CACHE_OUT = ["present_target_logits"]  # + kv_names("present", nLayers)
HEAD_IN = ["logits", "guidance_weights", "temperature", "uniforms"]
HEAD_OUT = ["sample_index", "sample_prob"]
FWD_IN = ["input_ids", "position_ids", "attention_mask"]
FWD_OUT = ["logits"]
SEGMENT_IN = ["input_ids", "position_ids", "attention_mask", "target_positions", "guidance_weights", "vocab_range",
              "temperature", "cache_ratio", "keep_counts", "step_active", "uniforms", "remask_noise"]
SEGMENT_OUT = ["tokens", "sample_prob", "row_max"]


def _flat(kvs):
    return [t for kv in kvs for t in kv]


def gather_rows(x, index):
    """x [R, L, K], index [R, N] -> x at each row's positions [R, N, K], as one Gather over the flattened rows with an
    [R·N] index. torch.gather with the index expanded to [R, N, K] exports an int64 [R, N, K] Expand, which onnxruntime
    places on the CPU and a GPU provider then copies to the device on every call."""
    R, L, K = x.shape
    flat = index + torch.arange(R, device=index.device).unsqueeze(1) * L
    return torch.index_select(x.reshape(-1, K), 0, flat.reshape(-1)).reshape(R, -1, K)


class DenoiseGraph(nn.Module):
    """`denoise` (§4.1); with exact=False `denoise_device` (§4.7): the same step with the device draw (§3.1)."""

    def __init__(self, lm, exact=True):
        super().__init__()
        self.lm = lm
        self.exact = exact

    def forward(self, input_ids, position_ids, attention_mask, target_positions, guidance_weights, vocab_range,
                temperature, uniforms):
        logits, present = self.lm.full_step(input_ids, position_ids, attention_mask, vocab_range)
        row_max = logits.max(dim=-1)[0]
        target_logits = gather_rows(logits, target_positions)
        sample_index, sample_prob = sample_rule(target_logits, guidance_weights, temperature, uniforms, self.exact)
        return (sample_index, sample_prob, row_max, target_logits, *_flat(present))


class PartialGraph(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, query_index, position_ids, attention_mask, vocab_range, *past):
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        logits, fresh = self.lm.partial_step(input_ids, query_index, position_ids, attention_mask, vocab_range, pairs)
        return logits, logits.max(dim=-1)[0], torch.stack([torch.stack([k, v], 0) for k, v in fresh], 0)


class ResidentPartialGraph(nn.Module):
    """`denoise_resident` (docs/model-interface.md §4.7): the partial step of `denoise_partial` for a cache that stays
    on the accelerator. It returns the updated cache instead of the fresh rows: per layer the K/V with the step's rows
    written in (the ScatterND outputs attention reads anyway), and the target logits [R, N, K] with the recomputed
    targets replaced (`target_source[r, n]` = the flat index r·S + s of the query that recomputed target n, −1 where
    none did). Only `row_max` [R, S] is meant to leave the device."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, query_index, position_ids, attention_mask, vocab_range, target_source,
                past_target_logits, *past):
        pairs = [(past[2 * i], past[2 * i + 1]) for i in range(len(past) // 2)]
        logits, merged = self.lm.partial_step_merged(input_ids, query_index, position_ids, attention_mask,
                                                     vocab_range, pairs)
        K = logits.shape[-1]
        fresh = torch.index_select(logits.reshape(-1, K), 0, target_source.clamp(min=0).reshape(-1))
        fresh = fresh.reshape(target_source.shape[0], target_source.shape[1], K)
        target_logits = torch.where((target_source >= 0).unsqueeze(-1), like(fresh, past_target_logits),
                                    past_target_logits)
        return (logits.max(dim=-1)[0], target_logits, *_flat(merged))


class CacheGatherGraph(nn.Module):
    """`cache_gather` (§4.7): the rows `rows` of a resident cache, in that order (the engine regroups sequences)."""

    def forward(self, rows, *cache):
        return tuple(torch.index_select(t, 0, rows) for t in cache)


class CacheConcatGraph(nn.Module):
    """`cache_concat` (§4.7): two resident caches' rows, one after the other (regrouping across caches)."""

    def forward(self, *caches):
        n = len(caches) // 2
        return tuple(torch.cat([a, b], 0) for a, b in zip(caches[:n], caches[n:]))


class SampleHeadGraph(nn.Module):
    """`sample_head` (§4.3); with exact=False `sample_head_device` (§4.7), the device draw (§3.1)."""

    def __init__(self, exact=True):
        super().__init__()
        self.exact = exact

    def forward(self, logits, guidance_weights, temperature, uniforms):
        return sample_rule(logits, guidance_weights, temperature, uniforms, self.exact)


class ForwardLogitsGraph(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids, attention_mask):
        return self.lm.forward_logits(input_ids, position_ids, attention_mask)


class _TopKSmallest(torch.autograd.Function):
    """The `k` smallest entries along the last axis with a data-dependent `k` (an int64 [1] tensor): TopK
    (largest=0, sorted=1) in the graph, which a traced `torch.topk` would freeze to the example's k."""

    @staticmethod
    def forward(ctx, x, k):  # noqa: D102  (torch API)
        return torch.topk(x, int(k.reshape(-1)[0]), dim=-1, largest=False, sorted=True)

    @staticmethod
    def symbolic(g, x, k):  # noqa: D102
        return g.op("TopK", x, k, axis_i=-1, largest_i=0, sorted_i=1, outputs=2)


def _rows_of(x, G):
    """[B, ...] per sequence -> [B*G, ...] per row (row = b*G + g)."""
    shape = list(x.shape)
    return x.unsqueeze(1).expand([shape[0], G] + shape[1:]).reshape([-1] + shape[1:])


class SegmentGraph(nn.Module):
    """`denoise_segment` (docs/model-interface.md §4.6): one refresh segment of the GPU ML-Cache path in one run.

    Unrolled to `steps` steps. Step 0 is a full step (as `denoise`) that builds the per-row K/V, target-logit and
    row-max caches; steps 1.. are ML-Cache partial steps exactly as the CPU path runs `denoise_partial` +
    `sample_head` (libs/diffusion/src/engine.ts): per row θ = linear-interpolation quantile (float64) of the cached
    row_max over the row's real positions at 1 − cache_ratio, S = {row_max ≤ θ}; the S positions are recomputed against
    the cache with their fresh K/V scattered in before attention in every layer, and only they update the K/V,
    row-max and target-logit caches; every target is (re)sampled from the merged target logits with the step's
    uniforms. After each step the MaskGIT rule of libs/diffusion/src/sampler.ts (maskgitRemask) commits the masked targets and
    re-masks those whose float64 score log(max(p, 1e-20)) + remask_noise is strictly below the (k+1)-th smallest
    score among the step's masked targets, k = min(keep_n, n − 1). A sequence's step runs only where step_active is 1
    (the active steps are a prefix; an inactive step changes nothing of that sequence).

    S has a different size per row: the graph recomputes a fixed-size superset, the k = max_r |S_r| positions of
    lowest row_max of every row (TopK; S_r is among them because every position outside S_r has a larger row_max),
    and lets only the S positions write the caches. `mask_id` (the manifest's tokens.mask) is embedded.
    """

    def __init__(self, lm, steps, mask_id):
        super().__init__()
        self.lm = lm
        self.steps = steps
        self.mask_id = mask_id

    def _partial(self, ids, pos, att, tp, vr, q_level, kv, rm, tl):
        lm = self.lm
        t = lm.transformer
        real = att > 0
        # selection (spec §3; libs/diffusion/src/cache-policy.ts selectRecompute), per row, in float64
        rm_real = torch.where(real, rm, torch.tensor(float("inf"), dtype=torch.float32))
        srt, _ = torch.sort(rm_real, dim=1)
        last = att.sum(1) - 1  # index of the row's last real position
        qpos = q_level * last.double()
        lo_f = torch.floor(qpos)
        lo = lo_f.long()
        hi = torch.minimum(lo + 1, last)
        s_lo = torch.gather(srt, 1, lo.unsqueeze(1)).double()
        s_hi = torch.gather(srt, 1, hi.unsqueeze(1)).double()
        theta = s_lo + (s_hi - s_lo) * (qpos - lo_f).unsqueeze(1)
        in_s = torch.logical_and(real, rm.double() <= theta)  # [R, L]
        k = in_s.long().sum(1).max().reshape(1)
        _, sel = _TopKSmallest.apply(rm_real, k)  # [R, k]: a superset of every row's S
        sel_in = torch.gather(in_s.long(), 1, sel) > 0
        # the partial step on the superset: only S rows are written into the cache (spec §3 steps 2-5), exactly as
        # denoise_partial (model.py run_layers) writes the CPU path's S rows
        x = t["wte"](torch.gather(ids, 1, sel))
        cos, sin = lm.rope_cos_sin(torch.gather(pos, 1, sel))
        bias = lm.key_bias(att)
        fused = lm.cfg.fused_attention
        if fused:
            bias = fused_attention.query_bias(bias, x)
        scale = 1.0 / math.sqrt(lm.cfg.head_dim)
        index = lm.scatter_index(sel)
        keep = sel_in.unsqueeze(1).unsqueeze(-1)  # [R, 1, k, 1]
        H = lm.cfg.n_heads
        idx = sel.unsqueeze(1).unsqueeze(-1).expand(-1, H, -1, lm.cfg.head_dim)
        layers = []
        for i, b in enumerate(t["blocks"]):
            h = b.attn_norm(x)
            qh = lm.rope(lm.heads(b.q_proj(h)), cos, sin)
            qh = reshape_tail(qh, (lm.cfg.d_model,)) if fused else qh.transpose(1, 2)
            kf = lm.rope(lm.heads(b.k_proj(h)), cos, sin).transpose(1, 2)  # the cache holds K after RoPE, heads split
            vf = lm.split_heads(b.v_proj(h))
            k_old, v_old = kv[i]
            k_all = scatter_nd(k_old, index, torch.where(keep, kf, torch.gather(k_old, 2, idx)))
            v_all = scatter_nd(v_old, index, torch.where(keep, vf, torch.gather(v_old, 2, idx)))
            layers.append((k_all, v_all))
            if fused:
                o = fused_attention.multi_head_attention(qh, k_all, v_all, bias, H, scale)
            else:
                a = torch.softmax(torch.matmul(qh, k_all.transpose(-1, -2)) * scale + like(bias, qh), dim=-1)
                o = lm.merge_heads(torch.matmul(a, v_all))
            x = x + b.attn_out(o)
            h2 = b.ff_norm(x)
            x = x + b.ff_out(F.silu(b.ff_proj(h2)) * b.up_proj(h2))
        logits = torch.matmul(t["ln_f"](x), lm.head_slice_weight(vr).t())  # [R, k, K]
        rm_fresh = logits.max(dim=-1)[0]
        # slot[r, i] = the superset entry that recomputed position i when i is in S, else -1
        slot_of = torch.where(sel_in, torch.cumsum(torch.ones_like(sel), 1) - 1, torch.zeros_like(sel) - 1)
        slot = torch.scatter(torch.zeros_like(ids) - 1, 1, sel, slot_of)
        rm_new = torch.where(slot >= 0, torch.gather(rm_fresh, 1, slot.clamp(min=0)), rm)
        tslot = torch.gather(slot, 1, tp)  # [R, N]
        fresh_tl = torch.gather(logits, 1, tslot.clamp(min=0).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
        tl_new = torch.where((tslot >= 0).unsqueeze(-1), fresh_tl, tl)
        return layers, rm_new, tl_new

    def _remask(self, tok, sample_index, sample_prob, lo, keep_n, noise):
        """MaskGIT commit + re-mask of one step (libs/diffusion/src/sampler.ts maskgitRemask)."""
        mask = torch.tensor(self.mask_id, dtype=torch.int64)
        masked = tok == mask
        cand = torch.where(masked, sample_index + lo, tok)
        score = torch.log(torch.maximum(sample_prob.double(), torch.tensor(1e-20, dtype=torch.float64))) + noise
        ordered, _ = torch.sort(torch.where(masked, score, torch.tensor(float("inf"), dtype=torch.float64)), dim=1)
        n = masked.long().sum(1, keepdim=True)
        kk = torch.minimum(keep_n.unsqueeze(1), n - 1).clamp(min=0)
        cutoff = torch.gather(ordered, 1, kk)
        back = torch.logical_and(masked, score < cutoff)
        return torch.where(back, mask, cand)

    def forward(self, input_ids, position_ids, attention_mask, target_positions, guidance_weights, vocab_range,
                temperature, cache_ratio, keep_counts, step_active, uniforms, remask_noise):
        lm = self.lm
        G = guidance_weights.shape[1]
        N = target_positions.shape[1]
        ids = input_ids
        # the sequence's tokens at its targets (they are the same in every branch row)
        tok = torch.gather(ids, 1, target_positions).reshape(-1, G, N)[:, 0]
        q_level = _rows_of(1.0 - cache_ratio, G)  # quantile level per row, float64 as the host computes it
        lo = vocab_range[0]
        kv = rm = tl = rm_out = prob_out = None
        for s in range(self.steps):
            if s == 0:
                logits, kv = lm.full_step(ids, position_ids, attention_mask, vocab_range)
                rm = logits.max(dim=-1)[0]
                tl = torch.gather(logits, 1, target_positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
            else:
                kv, rm, tl = self._partial(ids, position_ids, attention_mask, target_positions, vocab_range, q_level,
                                           kv, rm, tl)
            sample_index, sample_prob = sample_rule(tl, guidance_weights, temperature, uniforms[:, s])
            new = self._remask(tok, sample_index, sample_prob, lo, keep_counts[:, s], remask_noise[:, s])
            active = step_active[:, s] > 0  # [B]
            tok = torch.where(active.unsqueeze(1), new, tok)
            if s == 0:
                rm_out, prob_out = rm, sample_prob
            else:
                rm_out = torch.where(_rows_of(active, G).unsqueeze(1), rm, rm_out)
                prob_out = torch.where(active.unsqueeze(1), sample_prob, prob_out)
            if s + 1 < self.steps:
                ids = torch.scatter(ids, 1, target_positions, _rows_of(tok, G))
        return tok, prob_out, rm_out


def round_weights_fp16(lm):
    """Round every parameter to the nearest float16 value (kept as float32): what the graphs store."""
    with torch.no_grad():
        for p in lm.parameters():
            p.copy_(p.half().float())


def example_inputs(tok, cfg, R=4, B=2, L=23, N=7, S=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, tok.vocab_size, (R, L), generator=g)
    pos = torch.arange(L).unsqueeze(0).repeat(R, 1)
    att = torch.ones(R, L, dtype=torch.int64)
    att[1, L - 3:] = 0
    pos[1, L - 3:] = 0
    ids[1, L - 3:] = 0
    tp = torch.stack([torch.randperm(L - 3, generator=g)[:N] for _ in range(R)])
    G = R // B
    gw = torch.tensor([[1.5, -0.5]] * B, dtype=torch.float32)[:, :G]
    vr = torch.tensor([tok.code_offset, tok.vocab_size], dtype=torch.int64)
    temp = torch.tensor([0.0, 1.0] * B, dtype=torch.float32)[:B]
    uni = torch.rand(B, N, generator=g).clamp(1e-3, 1 - 1e-3)
    qi = torch.stack([torch.randperm(L - 3, generator=g)[:S] for _ in range(R)])
    past = [torch.randn(R, cfg.n_heads, L, cfg.head_dim, generator=g) for _ in range(2 * cfg.n_layers)]
    return dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp, guidance_weights=gw,
                vocab_range=vr, temperature=temp, uniforms=uni, query_index=qi, past=past)


def denoise_spec(lm, ex, exact):
    """`denoise` (exact) or `denoise_device` (the device draw): the same inputs, outputs and axes."""
    present = kv_names("present", lm.cfg.n_layers)
    RL, RN, BN, RHL = {0: "R", 1: "L"}, {0: "R", 1: "N"}, {0: "B", 1: "N"}, {0: "R", 2: "L"}
    return (DenoiseGraph(lm, exact), [ex[k] for k in DENOISE_IN], DENOISE_IN, DENOISE_OUT + present, {
        "input_ids": RL, "position_ids": RL, "attention_mask": RL, "target_positions": RN,
        "guidance_weights": {0: "B", 1: "G"}, "temperature": {0: "B"}, "uniforms": BN,
        "sample_index": BN, "sample_prob": BN, "row_max": RL, "target_logits": {0: "R", 1: "N", 2: "K"},
        **{k: RHL for k in present}})


def sample_head_spec(K, ex, exact):
    """`sample_head` (exact) or `sample_head_device` (the device draw) over K-wide target logits."""
    BN = {0: "B", 1: "N"}
    return (SampleHeadGraph(exact), [torch.randn(4, 7, K), ex["guidance_weights"], ex["temperature"], ex["uniforms"]],
            HEAD_IN, HEAD_OUT, {"logits": {0: "R", 1: "N", 2: "K"}, "guidance_weights": {0: "B", 1: "G"},
                                "temperature": {0: "B"}, "uniforms": BN, "sample_index": BN, "sample_prob": BN})


def transformer_specs(lm, ex):
    """name -> (module, example args, input names, output names, dynamic axes) of `denoise` and `denoise_partial`
    (§4.1, §4.2), shared by this exporter and the real checkpoint's (real/exporter.py)."""
    n = lm.cfg.n_layers
    present, past = kv_names("present", n), kv_names("past", n)
    RL, RN, RS, BN, RHL = {0: "R", 1: "L"}, {0: "R", 1: "N"}, {0: "R", 1: "S"}, {0: "B", 1: "N"}, {0: "R", 2: "L"}
    return {
        "denoise": denoise_spec(lm, ex, exact=True),
        "denoise_partial": (PartialGraph(lm), [ex["input_ids"][:, :5], ex["query_index"], ex["position_ids"][:, :5],
                                               ex["attention_mask"], ex["vocab_range"], *ex["past"]],
                            PARTIAL_IN + past, PARTIAL_OUT, {
            "input_ids": RS, "query_index": RS, "position_ids": RS, "attention_mask": RL,
            "logits": {0: "R", 1: "S", 2: "K"}, "row_max": RS, "new_kv": {2: "R", 4: "S"},
            **{k: RHL for k in past}}),
    }


def resident_specs(lm, ex):
    """name -> (module, example args, input names, output names, dynamic axes) of the device-resident ML-Cache's
    graphs (§4.7), shared by this exporter and the real checkpoint's."""
    n = lm.cfg.n_layers
    present, past, more = kv_names("present", n), kv_names("past", n), kv_names("more", n)
    R, N, S = ex["input_ids"].shape[0], ex["target_positions"].shape[1], 5
    K = int(ex["vocab_range"][1] - ex["vocab_range"][0])
    g = torch.Generator().manual_seed(5)
    source = torch.randint(-R * S, R * S, (R, N), generator=g).clamp(min=-1)  # about half the targets recomputed
    tl = torch.randn(R, N, K, generator=g)
    RS, RHL, RNK = {0: "R", 1: "S"}, {0: "R", 2: "L"}, {0: "R", 1: "N", 2: "K"}
    out_rows = {0: "Rout", 2: "L"}
    return {
        # the full step and the draw for a provider without float64 (§3.1): the guided logits stay on the device
        "denoise_device": denoise_spec(lm, ex, exact=False),
        "sample_head_device": sample_head_spec(K, ex, exact=False),
        "denoise_resident": (ResidentPartialGraph(lm), [ex["input_ids"][:, :S], ex["query_index"],
                                                        ex["position_ids"][:, :S], ex["attention_mask"],
                                                        ex["vocab_range"], source, tl, *ex["past"]],
                             RESIDENT_IN + past, RESIDENT_OUT + present, {
            "input_ids": RS, "query_index": RS, "position_ids": RS, "attention_mask": {0: "R", 1: "L"},
            "target_source": {0: "R", 1: "N"}, "past_target_logits": RNK, "row_max": RS,
            "present_target_logits": RNK, **{k: RHL for k in past + present}}),
        "cache_gather": (CacheGatherGraph(), [torch.tensor([2, 0, 0]), tl, *ex["past"]], GATHER_IN + past,
                         CACHE_OUT + present, {
            "rows": {0: "Rout"}, "past_target_logits": RNK, "present_target_logits": {0: "Rout", 1: "N", 2: "K"},
            **{k: RHL for k in past}, **{k: out_rows for k in present}}),
        "cache_concat": (CacheConcatGraph(), [tl, *ex["past"], tl[:1], *[x[:1] for x in ex["past"]]],
                         CONCAT_IN + past + ["more_target_logits"] + more, CACHE_OUT + present, {
            "past_target_logits": RNK, "more_target_logits": {0: "Rmore", 1: "N", 2: "K"},
            "present_target_logits": {0: "Rout", 1: "N", 2: "K"}, **{k: RHL for k in past},
            **{k: {0: "Rmore", 2: "L"} for k in more}, **{k: out_rows for k in present}}),
    }



def _export(module, args, path, in_names, out_names, dyn):
    torch.onnx.export(module, tuple(args), path, opset_version=OPSET, input_names=in_names, output_names=out_names,
                      dynamic_axes=dyn, do_constant_folding=True)


def _fp16_initializers(path, min_elems=1024):
    """Store large float32 initializers as float16 + Cast (exact: the values are float16-representable)."""
    m = onnx.load(path)
    g = m.graph
    new_inits, casts = [], []
    for init in g.initializer:
        arr = numpy_helper.to_array(init)
        if arr.dtype == np.float32 and arr.size >= min_elems:
            h = arr.astype(np.float16)
            assert np.array_equal(h.astype(np.float32), arr), f"{init.name} is not float16-representable"
            new_inits.append(numpy_helper.from_array(h, init.name + "__fp16"))
            casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT,
                                          name="cast_" + init.name))
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def segment_example(ex, steps, seed=0):
    """Inputs for tracing `denoise_segment` from example_inputs (B = 2, G = 2)."""
    g = torch.Generator().manual_seed(seed)
    B = ex["guidance_weights"].shape[0]
    N = ex["target_positions"].shape[1]
    tp = ex["target_positions"][0:1].repeat(ex["input_ids"].shape[0], 1)
    return dict(input_ids=ex["input_ids"], position_ids=ex["position_ids"], attention_mask=ex["attention_mask"],
                target_positions=tp, guidance_weights=ex["guidance_weights"], vocab_range=ex["vocab_range"],
                temperature=ex["temperature"], cache_ratio=torch.full((B,), 0.9, dtype=torch.float64),
                keep_counts=torch.full((B, steps), 3, dtype=torch.int64),
                step_active=torch.ones(B, steps, dtype=torch.int64),
                uniforms=torch.rand(B, steps, N, generator=g).clamp(1e-3, 1 - 1e-3),
                remask_noise=torch.rand(B, steps, N, generator=g).double())


def _dedupe_initializers(path):
    """One initializer per distinct tensor (an unrolled graph may fold the same weight transpose once per use)."""
    m = onnx.load(path)
    g = m.graph
    seen, rename, keep = {}, {}, []
    for init in g.initializer:
        key = (init.data_type, tuple(init.dims), init.raw_data if init.raw_data else init.SerializeToString())
        if key in seen:
            rename[init.name] = seen[key]
        else:
            seen[key] = init.name
            keep.append(init)
    if not rename:
        return 0
    del g.initializer[:]
    g.initializer.extend(keep)
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return len(rename)


def export_segment(lm, tok, out_dir, steps):
    """Writes denoise_segment.onnx (§4.6), unrolled to `steps` steps (the manifest's segmentSteps)."""
    ex = segment_example(example_inputs(tok, lm.cfg), steps)
    RL = {0: "R", 1: "L"}
    BN = {0: "B", 1: "N"}
    p = os.path.join(out_dir, "denoise_segment.onnx")
    with torch.no_grad():
        _export(SegmentGraph(lm, steps, tok.mask), [ex[k] for k in SEGMENT_IN], p, SEGMENT_IN, SEGMENT_OUT, {
            "input_ids": RL, "position_ids": RL, "attention_mask": RL, "target_positions": {0: "R", 1: "N"},
            "guidance_weights": {0: "B", 1: "G"}, "temperature": {0: "B"}, "cache_ratio": {0: "B"},
            "keep_counts": {0: "B"}, "step_active": {0: "B"}, "uniforms": {0: "B", 2: "N"},
            "remask_noise": {0: "B", 2: "N"}, "tokens": BN, "sample_prob": BN, "row_max": RL})
    _dedupe_initializers(p)
    _fp16_initializers(p)
    onnx.checker.check_model(onnx.load(p))
    return p


def export_resident(lm, tok, out_dir):
    """Writes the device-resident ML-Cache's graphs (§4.7): denoise_device, sample_head_device, denoise_resident,
    cache_gather, cache_concat."""
    lm.eval()
    ex = example_inputs(tok, lm.cfg)
    paths = {}
    with torch.no_grad():
        for name, (module, args, ins, outs, dyn) in resident_specs(lm, ex).items():
            p = os.path.join(out_dir, f"{name}.onnx")
            _export(module, args, p, ins, outs, dyn)
            paths[name] = p
    _fp16_initializers(paths["denoise_resident"])
    _fp16_initializers(paths["denoise_device"])
    for p in paths.values():
        onnx.checker.check_model(onnx.load(p))
    return paths


def export_all(lm, tok, book, out_dir, segment_steps=None):
    lm.eval()
    cfg = lm.cfg
    ex = example_inputs(tok, cfg)
    RL = {0: "R", 1: "L"}
    paths = {}
    with torch.no_grad():
        for name, (module, args, ins, outs, dyn) in transformer_specs(lm, ex).items():
            p = os.path.join(out_dir, f"{name}.onnx")
            _export(module, args, p, ins, outs, dyn)
            paths[name] = p
        p = os.path.join(out_dir, "sample_head.onnx")
        module, args, ins, outs, dyn = sample_head_spec(tok.vocab_size - tok.code_offset, ex, exact=True)
        _export(module, args, p, ins, outs, dyn)
        paths["sample_head"] = p
        p = os.path.join(out_dir, "forward_logits.onnx")
        _export(ForwardLogitsGraph(lm), [ex["input_ids"], ex["position_ids"], ex["attention_mask"]], p, FWD_IN,
                FWD_OUT, {"input_ids": RL, "position_ids": RL, "attention_mask": RL, "logits": {0: "R", 1: "L"}})
        paths["forward_logits"] = p
        p = os.path.join(out_dir, "vq_encode.onnx")
        _export(vqmod.VQEncode(book), [torch.rand(2, 3, 32, 48)], p, ["pixels"], ["codes"],
                {"pixels": {0: "B", 2: "H", 3: "W"}, "codes": {0: "B", 1: "Hg", 2: "Wg"}})
        paths["vq_encode"] = p
        p = os.path.join(out_dir, "vq_decode.onnx")
        _export(vqmod.VQDecode(book), [torch.randint(0, 256, (2, 2, 3))], p, ["codes"], ["pixels"],
                {"codes": {0: "B", 1: "Hg", 2: "Wg"}, "pixels": {0: "B", 2: "H", 3: "W"}})
        paths["vq_decode"] = p
    for name in ("denoise", "denoise_partial", "forward_logits"):
        _fp16_initializers(paths[name])
    for p in paths.values():
        onnx.checker.check_model(onnx.load(p))
    if segment_steps:
        paths["denoise_segment"] = export_segment(lm, tok, out_dir, segment_steps)
    paths.update(export_resident(lm, tok, out_dir))
    return paths


# ---------------------------------------------------------------------------------------------------------------
# numeric self-checks in PyTorch (ONNX numerics are checked by conformance.py and the TypeScript side)

def torch_steps(lm):
    """The CPU path's step functions (conformance.host_segment) over the PyTorch graphs."""
    t = lambda *a: [torch.from_numpy(np.asarray(x)) for x in a]  # noqa: E731

    def full(ids, pos, att, tp, w, vr, tau, u):
        with torch.no_grad():
            o = [x.numpy() for x in DenoiseGraph(lm)(*t(ids, pos, att, tp, w, vr, tau, u))]
        return o[0], o[1], o[2], o[4:], o[3]

    def partial(ids_s, qi, pos_s, kv, att, vr):
        with torch.no_grad():
            return [x.numpy() for x in PartialGraph(lm)(*t(ids_s, qi, pos_s, att, vr, *kv))]

    def head(tl, w, tau, u):
        with torch.no_grad():
            return [x.numpy() for x in SampleHeadGraph()(*t(tl, w, tau, u))]
    return full, partial, head


def segment_matches_host(lm, tok, steps, kind="t2i", seed=3):
    """SegmentGraph in PyTorch == the CPU ML-Cache path step by step (conformance.host_segment) on one case.
    -> (tokens equal, tokens committed by the segment)."""
    import conformance
    f = conformance.segment_case(tok, kind, steps, seed)
    with torch.no_grad():
        got = SegmentGraph(lm, steps, tok.mask)(*[torch.from_numpy(np.asarray(f[k])) for k in SEGMENT_IN])[0].numpy()
    ref = conformance.host_segment(*torch_steps(lm), f, tok.mask)
    G = f["input_ids"].shape[0] // f["keep_counts"].shape[0]
    start = np.take_along_axis(f["input_ids"], f["target_positions"], 1)[::G]
    return bool(np.array_equal(got, ref)), int((got != start).sum())


def resident_matches_partial(lm, ids_s, qs, pos_s, ex, kv, tl):
    """`denoise_resident` returns exactly what the CPU path gets by scattering `denoise_partial`'s outputs into its
    cache (libs/runtime/src/host-cache.ts scatter): the K/V at the query rows, the target logits of the targets the
    step recomputed; every other entry unchanged."""
    R, S = qs.shape
    tp = ex["target_positions"]
    N = tp.shape[1]
    # target n of row r was recomputed by query s when qs[r, s] == tp[r, n]
    hit = qs.unsqueeze(1) == tp.unsqueeze(2)  # [R, N, S]
    source = torch.where(hit.any(-1), torch.arange(R).unsqueeze(1) * S + hit.long().argmax(-1), torch.tensor(-1))
    args = (ids_s, qs, pos_s, ex["attention_mask"], ex["vocab_range"])
    logits, row_max, new_kv = PartialGraph(lm)(*args, *kv)
    out = ResidentPartialGraph(lm)(*args, source, tl, *kv)
    want_tl = tl.clone()
    want_kv = [x.clone() for x in kv]
    for r in range(R):
        for s in range(S):
            for j in range(len(kv)):
                want_kv[j][r, :, qs[r, s]] = new_kv[j // 2, j % 2, r, :, s]
        for n in range(N):
            if source[r, n] >= 0:
                want_tl[r, n] = logits[r, int(source[r, n]) - r * S]
    return bool(int((source >= 0).sum()) > 0 and torch.equal(out[0], row_max) and torch.equal(out[1], want_tl)
                and all(torch.equal(a, b) for a, b in zip(out[2:], want_kv)))


def torch_checks(lm, tok, log=print, segment_steps=None):
    lm.eval()
    cfg = lm.cfg
    ex = example_inputs(tok, cfg, R=6, B=3, L=31, N=9, S=6, seed=1)
    ex["guidance_weights"] = torch.tensor([[2.0, -1.0], [1.0, 0.0], [3.0, -2.0]])
    ex["temperature"] = torch.tensor([0.0, 0.7, 1.3])
    res = {}
    with torch.no_grad():
        den = DenoiseGraph(lm)(*[ex[k] for k in DENOISE_IN])
        si, sp, rm, tl = den[:4]
        kv = list(den[4:])
        # 1. sample_head on denoise's target logits == denoise's outputs
        hi, hp = SampleHeadGraph()(tl, ex["guidance_weights"], ex["temperature"], ex["uniforms"])
        res["sampleHeadMatchesDenoise"] = bool(torch.equal(hi, si) and torch.equal(hp, sp))
        # 1b. the device draw (§3.1): the same step's tokens under float32 sums; greedy ones exact
        di, dp = DenoiseGraph(lm, exact=False)(*[ex[k] for k in DENOISE_IN])[:2]
        hdi, hdp = SampleHeadGraph(exact=False)(tl, ex["guidance_weights"], ex["temperature"], ex["uniforms"])
        greedy = ex["temperature"] == 0
        res["deviceDrawAgreement"] = float((di == si).double().mean())
        res["deviceDrawOk"] = bool(torch.equal(di[greedy], si[greedy]) and torch.equal(hdi, di) and torch.equal(hdp, dp)
                                   and res["deviceDrawAgreement"] >= 0.99)
        # 2. forward_logits sliced at the targets == target_logits
        fl = ForwardLogitsGraph(lm)(ex["input_ids"], ex["position_ids"], ex["attention_mask"])
        sl = fl[..., tok.code_offset:tok.vocab_size]
        g = torch.gather(sl, 1, ex["target_positions"].unsqueeze(-1).expand(-1, -1, sl.shape[-1]))
        res["forwardLogitsMaxDiff"] = float((g - tl).abs().max())
        # 3. partial over every position (random past) == full step
        R, L = ex["input_ids"].shape
        qi = torch.arange(L).unsqueeze(0).repeat(R, 1)
        pa = PartialGraph(lm)(ex["input_ids"], qi, ex["position_ids"], ex["attention_mask"], ex["vocab_range"],
                              *[torch.randn_like(x) for x in kv])
        full_logits, _ = lm.full_step(ex["input_ids"], ex["position_ids"], ex["attention_mask"], ex["vocab_range"])
        valid = ex["attention_mask"].bool()
        res["partialAllMaxDiff"] = float((pa[0] - full_logits)[valid].abs().max())
        res["partialAllKvMaxDiff"] = max(float((pa[2][j // 2, j % 2] - x).abs().max()) for j, x in enumerate(kv))
        # 4. partial over a subset with the full step's own cache == full step at the subset
        S = 6
        qs = torch.stack([torch.randperm(int(valid[r].sum()))[:S] for r in range(R)])
        ids_s = torch.gather(ex["input_ids"], 1, qs)
        pos_s = torch.gather(ex["position_ids"], 1, qs)
        pl2 = PartialGraph(lm)(ids_s, qs, pos_s, ex["attention_mask"], ex["vocab_range"], *kv)[0]
        ref = torch.gather(full_logits, 1, qs.unsqueeze(-1).expand(-1, -1, full_logits.shape[-1]))
        res["partialSubsetMaxDiff"] = float((pl2 - ref).abs().max())
        # 5. denoise_resident == denoise_partial with its fresh rows written into the cache on the host
        res["residentMatchesPartial"] = resident_matches_partial(lm, ids_s, qs, pos_s, ex, kv, tl)
    ok = (res["residentMatchesPartial"] and res["sampleHeadMatchesDenoise"] and res["deviceDrawOk"] and res["forwardLogitsMaxDiff"] < 1e-4 and res["partialAllMaxDiff"] < 1e-4
          and res["partialAllKvMaxDiff"] < 1e-5 and res["partialSubsetMaxDiff"] < 1e-4)
    if segment_steps:
        # 6. denoise_segment == the CPU ML-Cache path (denoise, denoise_partial, sample_head + host remask)
        same, committed = segment_matches_host(lm, tok, segment_steps)
        res["segmentMatchesHostPath"] = same and committed > 0
        ok = ok and res["segmentMatchesHostPath"]
    res["ok"] = bool(ok)
    log(f"torch checks: {res}")
    return res


def with_resident(man):
    """The manifest with the device-resident ML-Cache's graphs (§4.7) in graphs and files."""
    out = dict(man)
    out["graphs"] = dict(man["graphs"], **{g: f"{g}.onnx" for g in RESIDENT_GRAPHS})
    out["files"] = dict(man["files"])
    for g in RESIDENT_GRAPHS:
        out["files"].setdefault(f"{g}.onnx", {})
    return out


def with_segment(man, steps):
    """The manifest with graphs.denoise_segment and segmentSteps (placed after graphs) and a files entry for it."""
    out = {}
    for k, v in man.items():
        if k == "segmentSteps":
            continue
        out[k] = v
        if k == "graphs":
            out["graphs"] = dict(v, denoise_segment="denoise_segment.onnx")
            out["segmentSteps"] = steps
    out["files"] = dict(out["files"])
    out["files"].setdefault("denoise_segment.onnx", {})
    return out


def main(argv=None):
    """Re-export the graphs of a built model directory from its weights.npz (no retraining):

        /usr/bin/python3 tools/model/export.py --from models/tiny [--out DIR] [--only-resident] [--fused-attention]

    and refresh the manifest's file hashes.
    """
    import argparse
    import json

    import build_tiny
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--segment-steps", type=int, default=None,
                    help="unroll denoise_segment to this many steps (default: the manifest's segmentSteps, else "
                         "defaults.cache.refreshInterval)")
    ap.add_argument("--only-resident", action="store_true",
                    help="export only the device-resident ML-Cache's graphs (§4.7), leaving the others as they are")
    ap.add_argument("--fused-attention", action="store_true",
                    help="attention as one com.microsoft MultiHeadAttention node per layer (fused_attention.py), for "
                         "onnxruntime's WebGPU provider")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    out = args.out or args.src
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(args.src, "manifest.json")) as f:
        man = json.load(f)
    steps = args.segment_steps or man.get("segmentSteps") or man["defaults"]["cache"]["refreshInterval"]
    from tokenizer import Tokenizer
    tok = Tokenizer.load(os.path.join(args.src, "tokenizer.json"))
    lm, book = build_tiny.load_weights(os.path.join(args.src, "weights.npz"))
    lm.cfg.fused_attention = args.fused_attention
    if args.only_resident:
        export_resident(lm, tok, out)
    else:
        export_all(lm, tok, book, out, segment_steps=steps)
    if not torch_checks(lm, tok, segment_steps=None if args.only_resident else steps)["ok"]:
        return 1
    if os.path.abspath(out) != os.path.abspath(args.src):
        import shutil
        for f in ("tokenizer.json", "world.json", "weights.npz", "train-report.json", "README.md"):
            if os.path.exists(os.path.join(args.src, f)):
                shutil.copy(os.path.join(args.src, f), os.path.join(out, f))
    man = with_resident(with_segment(man, steps))
    for name in man["files"]:
        p = os.path.join(out, name)
        man["files"][name] = {"sha256": build_tiny.sha256(p), "bytes": os.path.getsize(p)}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")
    print(f"exported to {out}")
    return 0


if __name__ == "__main__":
    import sys
    sys.exit(main())
