"""The PyTorch side of the twin's parity test: fixed inputs with the real ids, the PyTorch model's outputs written to
OUT/parity/ (fixture.json + outputs.bin, float32 little-endian), which libs/runtime/src/twin.spec.ts compares with
onnxruntime-node on the exported graphs (max abs diff reported and bounded).  The same comparison is made here with the
NumPy interpreter (onnx_eval) on the fp32 graphs, recorded in build.json."""

import json
import os

import numpy as np
import torch

import export as graphs_mod
import onnx_eval


def parity_inputs(man):
    """Two rows (t2i cond / uncond branch, the second shorter and padded), a 4x4 image grid partly decoded."""
    t = man["tokens"]
    sp = man["tokenizer"]["specialTokens"]
    text = [72, 101, 108, 108, 111, 262, 264, 100, 258, 99, 105, 114, 99, 108, 101]  # byte-level ids + merges
    bos = [t["bos"]] if t["bos"] is not None else []
    sysw = [71, 101, 110, 261, 97, 116, 101, 258, 105, 109, 97, 103, 101, 46]
    cond = bos + [sp["<system>"]] + sysw + [sp["</system>"], sp["<user>"]] + text + [sp["</user>"]]
    unc = bos + [sp["<system>"]] + sysw + [sp["</system>"], sp["<user>"], t["uncondition"], sp["</user>"]]
    rng = np.random.RandomState(5)
    block, cells = [t["boa"], t["boi"]], []
    for r in range(4):
        for c in range(4):
            cells.append(len(block))
            block.append(t["mask"] if rng.rand() < 0.6 else t["codeOffset"] + int(rng.randint(t["codebookSize"])))
        block.append(t["newline"])
    block += [t["eoi"], t["eoa"]]
    rows = [cond + block, unc + block]
    L = ((max(len(r) for r in rows) + 15) // 16) * 16
    ids = np.zeros((2, L), np.int64)
    pos = np.zeros((2, L), np.int64)
    att = np.zeros((2, L), np.int64)
    tp = np.zeros((2, len(cells)), np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        pos[i, :len(r)] = np.arange(len(r))
        att[i, :len(r)] = 1
        prefix = len(r) - len(block)
        tp[i] = [prefix + c for c in cells]
    return dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp,
                guidance_weights=np.array([[5.0, -4.0]], np.float32),
                vocab_range=np.array([t["codeOffset"], t["codeOffset"] + t["codebookSize"]], np.int64),
                temperature=np.array([0.0], np.float32),
                uniforms=((np.arange(len(cells)) + 0.5) / len(cells)).astype(np.float32)[None])


def test_image(size=64):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    return np.stack([x, y, (x + y) / 2])[None].astype(np.float32)  # [1, 3, H, W]


def logit_positions(att):
    """Three positions per row: the first, one in the middle, the last real one."""
    n = att.sum(1)
    return np.stack([[0, int(k) // 2, int(k) - 1] for k in n]).astype(np.int64)


def torch_outputs(lm, vq, f):
    tt = {k: torch.from_numpy(v) for k, v in f.items()}
    with torch.no_grad():
        den = graphs_mod.DenoiseGraph(lm)(*[tt[k] for k in graphs_mod.DENOISE_IN])
        fl = lm.forward_logits(tt["input_ids"], tt["position_ids"], tt["attention_mask"]).numpy()
        img = torch.from_numpy(test_image())
        codes = vq.encode_codes(img)
        px = vq.decode_codes(codes)
    lp = logit_positions(f["attention_mask"])
    sel = np.take_along_axis(fl, lp[..., None], 1)  # [R, 3, V]
    return {
        "sample_index": den[0].numpy(), "sample_prob": den[1].numpy(), "row_max": den[2].numpy(),
        "target_logits": den[3].numpy(), "logits_at": sel, "logit_positions": lp,
        "vq_codes": codes.numpy(), "vq_pixels": px.numpy(), "vq_input": img.numpy(),
    }


def write_fixture(lm, vq, man, out):
    os.makedirs(out, exist_ok=True)
    f = parity_inputs(man)
    o = torch_outputs(lm, vq, f)
    floats = ("row_max", "target_logits", "logits_at", "vq_pixels", "vq_input")
    offsets, off = {}, 0
    with open(os.path.join(out, "outputs.bin"), "wb") as fh:
        for k in floats:
            a = np.ascontiguousarray(o[k], np.float32)
            fh.write(a.tobytes())
            offsets[k] = {"offset": off, "shape": list(a.shape)}
            off += a.nbytes
    fixture = {
        "inputs": {k: {"shape": list(v.shape), "data": v.reshape(-1).tolist()} for k, v in f.items()},
        "torch": {"sample_index": o["sample_index"].tolist(), "sample_prob": o["sample_prob"].tolist(),
                  "logit_positions": o["logit_positions"].tolist(), "vq_codes": o["vq_codes"].tolist(),
                  "floats": offsets},
    }
    # the same comparison with the NumPy interpreter on the exported fp32 graphs
    d = os.path.join(os.path.dirname(out), "fp32")
    py = {}
    den = onnx_eval.Graph(os.path.join(d, "denoise.onnx")).run(f)
    valid = f["attention_mask"].astype(bool)
    py["denoiseTargetLogitsMaxAbsDiff"] = float(np.abs(den["target_logits"] - o["target_logits"]).max())
    py["denoiseRowMaxMaxAbsDiff"] = float(np.abs(den["row_max"] - o["row_max"])[valid].max())
    py["denoiseSampleIndexEqual"] = bool(np.array_equal(den["sample_index"], o["sample_index"]))
    fl = onnx_eval.Graph(os.path.join(d, "forward_logits.onnx")).run(
        {k: f[k] for k in ("input_ids", "position_ids", "attention_mask")})["logits"]
    sel = np.take_along_axis(fl, o["logit_positions"][..., None], 1)
    py["forwardLogitsMaxAbsDiff"] = float(np.abs(sel - o["logits_at"]).max())
    py["logitScale"] = float(np.abs(o["logits_at"]).max())
    # the fp16 graphs with float16 matmuls (onnxruntime's CPU provider folds the float16 casts away, so this is where
    # the float16 rounding of activations is measured on a machine without a GPU)
    fl16 = onnx_eval.Graph(os.path.join(os.path.dirname(out), "fp16", "forward_logits.onnx")).run(
        {k: f[k] for k in ("input_ids", "position_ids", "attention_mask")})["logits"]
    py["fp16ForwardLogitsMaxAbsDiff"] = float(np.abs(np.take_along_axis(fl16, o["logit_positions"][..., None], 1)
                                                     - o["logits_at"]).max())
    enc = onnx_eval.Graph(os.path.join(d, "vq_encode.onnx")).run({"pixels": o["vq_input"]})["codes"]
    py["vqCodesEqual"] = bool(np.array_equal(enc, o["vq_codes"]))
    dec = onnx_eval.Graph(os.path.join(d, "vq_decode.onnx")).run({"codes": o["vq_codes"]})["pixels"]
    py["vqPixelsMaxAbsDiff"] = float(np.abs(dec - o["vq_pixels"]).max())
    fixture["python"] = py
    with open(os.path.join(out, "fixture.json"), "w") as fh:
        json.dump(fixture, fh)
    return fixture
