"""ONNX export of the graphs of docs/model-interface.md §4.1–4.5 (opset 17, dynamic R/L/N/S/B/G/H/W/K axes).

The transformer graphs store their weight matrices as float16 initializers followed by a Cast to float32 (the
weights are rounded to float16 values before evaluation and export, so the PyTorch model and the graphs compute the
same float32 function; all activations are float32).  The VQ graphs keep float32 codebooks.
"""

import os

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, TensorProto
from torch import nn

import vq as vqmod
from model import sample_rule

OPSET = 17

DENOISE_IN = ["input_ids", "position_ids", "attention_mask", "target_positions", "guidance_weights", "vocab_range",
              "temperature", "uniforms"]
DENOISE_OUT = ["sample_index", "sample_prob", "row_max", "present_kv", "target_logits"]
PARTIAL_IN = ["input_ids", "query_index", "position_ids", "past_kv", "key_position_ids", "attention_mask",
              "vocab_range"]
PARTIAL_OUT = ["logits", "row_max", "new_kv"]
HEAD_IN = ["logits", "guidance_weights", "temperature", "uniforms"]
HEAD_OUT = ["sample_index", "sample_prob"]
FWD_IN = ["input_ids", "position_ids", "attention_mask"]
FWD_OUT = ["logits"]


class DenoiseGraph(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids, attention_mask, target_positions, guidance_weights, vocab_range,
                temperature, uniforms):
        logits, present = self.lm.full_step(input_ids, position_ids, attention_mask, vocab_range)
        row_max = logits.max(dim=-1)[0]
        idx = target_positions.unsqueeze(-1).expand(-1, -1, logits.shape[-1])
        target_logits = torch.gather(logits, 1, idx)
        sample_index, sample_prob = sample_rule(target_logits, guidance_weights, temperature, uniforms)
        return sample_index, sample_prob, row_max, present, target_logits


class PartialGraph(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, query_index, position_ids, past_kv, key_position_ids, attention_mask, vocab_range):
        logits, new_kv = self.lm.partial_step(input_ids, query_index, position_ids, past_kv, key_position_ids,
                                              attention_mask, vocab_range)
        return logits, logits.max(dim=-1)[0], new_kv


class SampleHeadGraph(nn.Module):
    def forward(self, logits, guidance_weights, temperature, uniforms):
        return sample_rule(logits, guidance_weights, temperature, uniforms)


class ForwardLogitsGraph(nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, position_ids, attention_mask):
        return self.lm.forward_logits(input_ids, position_ids, attention_mask)


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
    kv = torch.randn(cfg.n_layers, 2, R, L, cfg.d_model, generator=g)
    return dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp, guidance_weights=gw,
                vocab_range=vr, temperature=temp, uniforms=uni, query_index=qi, past_kv=kv)


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


def export_all(lm, tok, book, out_dir):
    lm.eval()
    cfg = lm.cfg
    ex = example_inputs(tok, cfg)
    RL = {0: "R", 1: "L"}
    RN = {0: "R", 1: "N"}
    RS = {0: "R", 1: "S"}
    BN = {0: "B", 1: "N"}
    paths = {}
    with torch.no_grad():
        p = os.path.join(out_dir, "denoise.onnx")
        _export(DenoiseGraph(lm), [ex[k] for k in DENOISE_IN], p, DENOISE_IN, DENOISE_OUT, {
            "input_ids": RL, "position_ids": RL, "attention_mask": RL, "target_positions": RN,
            "guidance_weights": {0: "B", 1: "G"}, "temperature": {0: "B"}, "uniforms": BN,
            "sample_index": BN, "sample_prob": BN, "row_max": RL, "present_kv": {2: "R", 3: "L"},
            "target_logits": {0: "R", 1: "N", 2: "K"}})
        paths["denoise"] = p
        p = os.path.join(out_dir, "denoise_partial.onnx")
        _export(PartialGraph(lm), [ex["input_ids"][:, :5], ex["query_index"], ex["position_ids"][:, :5],
                                   ex["past_kv"], ex["position_ids"], ex["attention_mask"], ex["vocab_range"]],
                p, PARTIAL_IN, PARTIAL_OUT, {
                    "input_ids": RS, "query_index": RS, "position_ids": RS, "past_kv": {2: "R", 3: "L"},
                    "key_position_ids": RL, "attention_mask": RL, "logits": {0: "R", 1: "S", 2: "K"},
                    "row_max": RS, "new_kv": {2: "R", 3: "S"}})
        paths["denoise_partial"] = p
        p = os.path.join(out_dir, "sample_head.onnx")
        K = tok.vocab_size - tok.code_offset
        tl = torch.randn(4, 7, K)
        _export(SampleHeadGraph(), [tl, ex["guidance_weights"], ex["temperature"], ex["uniforms"]], p, HEAD_IN,
                HEAD_OUT, {"logits": {0: "R", 1: "N", 2: "K"}, "guidance_weights": {0: "B", 1: "G"},
                           "temperature": {0: "B"}, "uniforms": BN, "sample_index": BN, "sample_prob": BN})
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
    return paths


# ---------------------------------------------------------------------------------------------------------------
# numeric self-checks in PyTorch (ONNX numerics are checked by conformance.py and the TypeScript side)

def torch_checks(lm, tok, log=print):
    lm.eval()
    cfg = lm.cfg
    ex = example_inputs(tok, cfg, R=6, B=3, L=31, N=9, S=6, seed=1)
    ex["guidance_weights"] = torch.tensor([[2.0, -1.0], [1.0, 0.0], [3.0, -2.0]])
    ex["temperature"] = torch.tensor([0.0, 0.7, 1.3])
    res = {}
    with torch.no_grad():
        den = DenoiseGraph(lm)(*[ex[k] for k in DENOISE_IN])
        si, sp, rm, kv, tl = den
        # 1. sample_head on denoise's target logits == denoise's outputs
        hi, hp = SampleHeadGraph()(tl, ex["guidance_weights"], ex["temperature"], ex["uniforms"])
        res["sampleHeadMatchesDenoise"] = bool(torch.equal(hi, si) and torch.equal(hp, sp))
        # 2. forward_logits sliced at the targets == target_logits
        fl = ForwardLogitsGraph(lm)(ex["input_ids"], ex["position_ids"], ex["attention_mask"])
        sl = fl[..., tok.code_offset:tok.vocab_size]
        g = torch.gather(sl, 1, ex["target_positions"].unsqueeze(-1).expand(-1, -1, sl.shape[-1]))
        res["forwardLogitsMaxDiff"] = float((g - tl).abs().max())
        # 3. partial over every position (random past) == full step
        R, L = ex["input_ids"].shape
        qi = torch.arange(L).unsqueeze(0).repeat(R, 1)
        pl, prm, nkv = PartialGraph(lm)(ex["input_ids"], qi, ex["position_ids"], torch.randn_like(kv),
                                        ex["position_ids"], ex["attention_mask"], ex["vocab_range"])
        full_logits, _ = lm.full_step(ex["input_ids"], ex["position_ids"], ex["attention_mask"], ex["vocab_range"])
        valid = ex["attention_mask"].bool()
        res["partialAllMaxDiff"] = float((pl - full_logits)[valid].abs().max())
        res["partialAllKvMaxDiff"] = float((nkv - kv).abs().max())
        # 4. partial over a subset with the full step's own cache == full step at the subset
        S = 6
        qs = torch.stack([torch.randperm(int(valid[r].sum()))[:S] for r in range(R)])
        ids_s = torch.gather(ex["input_ids"], 1, qs)
        pos_s = torch.gather(ex["position_ids"], 1, qs)
        pl2, _, nkv2 = PartialGraph(lm)(ids_s, qs, pos_s, kv, ex["position_ids"], ex["attention_mask"],
                                        ex["vocab_range"])
        ref = torch.gather(full_logits, 1, qs.unsqueeze(-1).expand(-1, -1, full_logits.shape[-1]))
        res["partialSubsetMaxDiff"] = float((pl2 - ref).abs().max())
    ok = (res["sampleHeadMatchesDenoise"] and res["forwardLogitsMaxDiff"] < 1e-4 and res["partialAllMaxDiff"] < 1e-4
          and res["partialAllKvMaxDiff"] < 1e-5 and res["partialSubsetMaxDiff"] < 1e-4)
    res["ok"] = bool(ok)
    log(f"torch checks: {res}")
    return res


def main(argv=None):
    """Re-export the graphs of a built model directory from its weights.npz (no retraining):

        /usr/bin/python3 tools/model/export.py --from models/tiny [--out DIR]

    and refresh the manifest's file hashes.
    """
    import argparse
    import json

    import build_tiny
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--from", dest="src", required=True)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    out = args.out or args.src
    os.makedirs(out, exist_ok=True)
    from tokenizer import Tokenizer
    tok = Tokenizer.load(os.path.join(args.src, "tokenizer.json"))
    lm, book = build_tiny.load_weights(os.path.join(args.src, "weights.npz"))
    export_all(lm, tok, book, out)
    if not torch_checks(lm, tok)["ok"]:
        return 1
    if os.path.abspath(out) != os.path.abspath(args.src):
        import shutil
        for f in ("tokenizer.json", "world.json", "weights.npz", "train-report.json", "README.md"):
            if os.path.exists(os.path.join(args.src, f)):
                shutil.copy(os.path.join(args.src, f), os.path.join(out, f))
    with open(os.path.join(args.src, "manifest.json")) as f:
        man = json.load(f)
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
