"""Conformance of a model directory with docs/model-interface.md (Python side).

    /usr/bin/python3 tools/model/conformance.py models/tiny

Exits non-zero on any violation.  Checks: the manifest schema (§7); every listed file exists with its sha256 and
size; the id map (V = codeOffset + codebookSize, specials distinct and below textVocabSize, tokenizer.json agrees);
every graph's opset, input/output names, dtypes, ranks and dynamic axes (§4); and the numerics, by running the
graphs with the NumPy interpreter onnx_eval.py (there is no onnxruntime for Python here): `denoise` agrees with
`forward_logits` through the §3 rule, `sample_head` on `denoise`'s target logits equals `denoise`'s samples, a partial
step that recomputes every position equals a full step (and a subset step on the full step's cache matches it), and
`vq_decode(vq_encode(x))` round-trips world images (when world.json is present).
"""

import hashlib
import json
import os
import sys

import numpy as np
import onnx

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import onnx_eval  # noqa: E402

F32, I64, F64 = 1, 7, 11

# name -> (inputs, outputs); each (name, elem type, rank, dynamic axes)
SIGNATURES = {
    "denoise": (
        [("input_ids", I64, 2, (0, 1)), ("position_ids", I64, 2, (0, 1)), ("attention_mask", I64, 2, (0, 1)),
         ("target_positions", I64, 2, (0, 1)), ("guidance_weights", F32, 2, (0, 1)), ("vocab_range", I64, 1, ()),
         ("temperature", F32, 1, (0,)), ("uniforms", F32, 2, (0, 1))],
        [("sample_index", I64, 2, (0, 1)), ("sample_prob", F32, 2, (0, 1)), ("row_max", F32, 2, (0, 1)),
         ("target_logits", F32, 3, (0, 1, 2)), ("*present", F32, 4, (0, 2))],
    ),
    "denoise_partial": (
        [("input_ids", I64, 2, (0, 1)), ("query_index", I64, 2, (0, 1)), ("position_ids", I64, 2, (0, 1)),
         ("attention_mask", I64, 2, (0, 1)), ("vocab_range", I64, 1, ()), ("*past", F32, 4, (0, 2))],
        [("logits", F32, 3, (0, 1, 2)), ("row_max", F32, 2, (0, 1)), ("new_kv", F32, 6, (2, 4))],
    ),
    "sample_head": (
        [("logits", F32, 3, (0, 1, 2)), ("guidance_weights", F32, 2, (0, 1)), ("temperature", F32, 1, (0,)),
         ("uniforms", F32, 2, (0, 1))],
        [("sample_index", I64, 2, (0, 1)), ("sample_prob", F32, 2, (0, 1))],
    ),
    "forward_logits": (
        [("input_ids", I64, 2, (0, 1)), ("position_ids", I64, 2, (0, 1)), ("attention_mask", I64, 2, (0, 1))],
        [("logits", F32, 3, (0, 1))],
    ),
    "vq_encode": ([("pixels", F32, 4, (0, 2, 3))], [("codes", I64, 3, (0, 1, 2))]),
    "vq_decode": ([("codes", I64, 3, (0, 1, 2))], [("pixels", F32, 4, (0, 2, 3))]),
    # §4.6, optional (a model without it serves through the CPU ML-Cache path only); the T axis is fixed to the
    # manifest's segmentSteps
    "denoise_segment": (
        [("input_ids", I64, 2, (0, 1)), ("position_ids", I64, 2, (0, 1)), ("attention_mask", I64, 2, (0, 1)),
         ("target_positions", I64, 2, (0, 1)), ("guidance_weights", F32, 2, (0, 1)), ("vocab_range", I64, 1, ()),
         ("temperature", F32, 1, (0,)), ("cache_ratio", F64, 1, (0,)), ("keep_counts", I64, 2, (0,)),
         ("step_active", I64, 2, (0,)), ("uniforms", F32, 3, (0, 2)), ("remask_noise", F64, 3, (0, 2))],
        [("tokens", I64, 2, (0, 1)), ("sample_prob", F32, 2, (0, 1)), ("row_max", F32, 2, (0, 1))],
    ),
    # §4.7, optional, all five or none: the device-resident ML-Cache (the full step and the draw under the float32
    # device rule §3.1, a partial step returning the updated cache, and the regrouping of cache rows on the device)
    "denoise_resident": (
        [("input_ids", I64, 2, (0, 1)), ("query_index", I64, 2, (0, 1)), ("position_ids", I64, 2, (0, 1)),
         ("attention_mask", I64, 2, (0, 1)), ("vocab_range", I64, 1, ()), ("target_source", I64, 2, (0, 1)),
         ("past_target_logits", F32, 3, (0, 1, 2)), ("*past", F32, 4, (0, 2))],
        [("row_max", F32, 2, (0, 1)), ("present_target_logits", F32, 3, (0, 1, 2)), ("*present", F32, 4, (0, 2))],
    ),
    "cache_gather": (
        [("rows", I64, 1, (0,)), ("past_target_logits", F32, 3, (0, 1, 2)), ("*past", F32, 4, (0, 2))],
        [("present_target_logits", F32, 3, (0, 1, 2)), ("*present", F32, 4, (0, 2))],
    ),
    "cache_concat": (
        [("past_target_logits", F32, 3, (0, 1, 2)), ("*past", F32, 4, (0, 2)), ("more_target_logits", F32, 3, (0, 1, 2)),
         ("*more", F32, 4, (0, 2))],
        [("present_target_logits", F32, 3, (0, 1, 2)), ("*present", F32, 4, (0, 2))],
    ),
}
SIGNATURES["denoise_device"] = SIGNATURES["denoise"]
SIGNATURES["sample_head_device"] = SIGNATURES["sample_head"]
RESIDENT_GRAPHS = ("denoise_device", "sample_head_device", "denoise_resident", "cache_gather", "cache_concat")
# the device draw (§3.1) against the exact rule: its float32 CDF may move a threshold across a boundary, by at most this
# share of the probability mass (float32 rounding of exp and of the running sum; the twin's flat 126,356-entry text
# slice measured 2.2e-6)
DEVICE_DRAW_CDF_TOL = 1e-4
OPTIONAL_GRAPHS = {"denoise_segment", *RESIDENT_GRAPHS}

SCHEMA = {
    "interfaceVersion": int, "name": str, "version": str, "description": str,
    "architecture": {"nLayers": int, "nHeads": int, "dModel": int, "ffnHidden": int, "ropeTheta": (int, float),
                     "vocabSize": int},
    "tokens": {"textVocabSize": int, "codeOffset": int, "codebookSize": int, "mask": int, "newline": int, "boi": int,
               "eoi": int, "uncondition": int, "boa": int, "eoa": int, "answerPad": int, "bos": (int, type(None)),
               "eos": (int, type(None))},
    "tokenizer": {"kind": str, "file": str, "config": str, "specialTokens": dict},
    "templates": {"prompt": str, "uncondition": str,
                  "sys": {"t2i": str, "edit": str, "subject": str, "control": str, "style": str, "dense": str,
                          "multiView": str, "mmu": str}},
    "image": {"gridFactor": int, "minSize": int, "maxSize": int, "defaultHeight": int, "defaultWidth": int,
              "maxAspect": (int, float)},
    "lengthBucket": int,
    "defaults": {
        "t2i": {"steps": int, "cfg": (int, float), "temperature": (int, float)},
        "i2i": {"steps": int, "cfg": (int, float), "cfgImage": (int, float), "temperature": (int, float)},
        "mmu": {"steps": int, "genLength": int, "blockLength": int, "cfg": (int, float), "temperature": (int, float)},
        "cache": {"cacheRatio": (int, float), "warmupRatio": (int, float), "refreshInterval": int},
    },
    "limits": {"maxSteps": int, "maxCfg": (int, float), "maxTemperature": (int, float), "maxGenLength": int,
               "maxBatchRows": int},
    "graphs": {g: str for g in SIGNATURES},
    "segmentSteps": int,
    "files": dict,
}
# keys a manifest may omit: the GPU path's graph and its unroll length (both or neither)
OPTIONAL_KEYS = {"manifest.graphs.denoise_segment", "manifest.segmentSteps",
                 *(f"manifest.graphs.{g}" for g in RESIDENT_GRAPHS), "manifest.tokenizer.config",
                 "manifest.tokenizer.specialTokens"}

SPECIALS = ["mask", "newline", "boi", "eoi", "uncondition", "boa", "eoa", "answerPad"]


class Checker:
    def __init__(self):
        self.failures = []
        self.passes = 0

    def check(self, cond, what):
        if cond:
            self.passes += 1
        else:
            self.failures.append(what)
            print(f"FAIL {what}", flush=True)
        return bool(cond)


def _schema(c, obj, schema, path):
    if not c.check(isinstance(obj, dict), f"{path} is an object"):
        return
    required = {k for k in schema if f"{path}.{k}" not in OPTIONAL_KEYS}
    c.check(required <= set(obj) <= set(schema), f"{path} keys {sorted(obj)}: all of {sorted(required)}, "
            f"nothing outside {sorted(schema)}")
    for k, t in schema.items():
        if k not in obj:
            continue
        v = obj[k]
        if isinstance(t, dict):
            _schema(c, v, t, f"{path}.{k}")
        elif t is dict:
            c.check(isinstance(v, dict), f"{path}.{k} is an object")
        else:
            ok = isinstance(v, t) and not (isinstance(v, bool) and t is not bool)
            c.check(ok, f"{path}.{k} has type {t}")


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check_files(c, d, man):
    files = man.get("files", {})
    needed = [f for f in man["graphs"].values()] + [man["tokenizer"]["file"]]
    c.check(("denoise_segment" in man["graphs"]) == ("segmentSteps" in man),
            "graphs.denoise_segment and segmentSteps come together")
    c.check(len({g in man["graphs"] for g in RESIDENT_GRAPHS}) == 1, f"graphs {', '.join(RESIDENT_GRAPHS)} come together")
    if "segmentSteps" in man:
        c.check(man["segmentSteps"] >= 1, "segmentSteps >= 1")
        c.check(man["segmentSteps"] >= man["defaults"]["cache"]["refreshInterval"],
                "segmentSteps >= defaults.cache.refreshInterval (the default schedule fits the graph)")
    if os.path.exists(os.path.join(d, "world.json")):
        needed.append("world.json")
    for f in needed:
        c.check(f in files, f"files lists {f}")
    for f, meta in files.items():
        p = os.path.join(d, f)
        if not c.check(os.path.isfile(p), f"{f} exists"):
            continue
        c.check(isinstance(meta, dict) and set(meta) == {"sha256", "bytes"}, f"files.{f} has sha256 and bytes")
        c.check(meta.get("bytes") == os.path.getsize(p), f"{f} size {os.path.getsize(p)} == {meta.get('bytes')}")
        c.check(meta.get("sha256") == sha256(p), f"{f} sha256 matches")


def check_ids(c, d, man):
    t = man["tokens"]
    a = man["architecture"]
    c.check(a["vocabSize"] == t["codeOffset"] + t["codebookSize"], "V = codeOffset + codebookSize")
    c.check(t["textVocabSize"] <= t["codeOffset"], "textVocabSize <= codeOffset")
    ids = [t[k] for k in SPECIALS]
    c.check(len(set(ids)) == len(ids), f"specials distinct {ids}")
    c.check(all(0 <= i < t["textVocabSize"] for i in ids), "specials below textVocabSize")
    c.check(a["dModel"] % a["nHeads"] == 0 and (a["dModel"] // a["nHeads"]) % 2 == 0, "dModel = heads x even headDim")
    c.check(man["interfaceVersion"] == 2, "interfaceVersion 2")
    c.check(man["tokenizer"]["kind"] in ("word", "hf"), "tokenizer.kind")
    c.check(man["templates"]["prompt"].count("{sys}") == 1 and man["templates"]["prompt"].count("{user}") == 1,
            "prompt template has {sys} and {user}")
    if man["tokenizer"]["kind"] == "hf":
        return check_hf_tokenizer(c, d, man)
    if man["tokenizer"]["kind"] != "word":
        return None
    with open(os.path.join(d, man["tokenizer"]["file"])) as f:
        tj = json.load(f)
    c.check(set(tj) == {"kind", "pattern", "lowercase", "unk", "vocab", "special"}, "tokenizer.json keys")
    c.check(tj.get("kind") == "word", "tokenizer.json kind word")
    vocab_ids = list(tj["vocab"].values())
    c.check(len(set(vocab_ids)) == len(vocab_ids), "tokenizer vocab ids distinct")
    c.check(all(0 <= i < t["textVocabSize"] for i in vocab_ids), "tokenizer vocab ids below textVocabSize")
    c.check(not (set(vocab_ids) & set(ids)), "tokenizer words do not collide with specials")
    sp = tj["special"]
    want = {"<IMAGE>": "boi", "</IMAGE>": "eoi", "<uncondition>": "uncondition", "<answer>": "boa",
            "</answer>": "eoa"}
    for s, k in want.items():
        c.check(sp.get(s) == t[k], f"tokenizer special {s} == tokens.{k}")
    for s in ("<system>", "</system>", "<user>", "</user>"):
        c.check(s in sp and 0 <= sp[s] < t["textVocabSize"] and sp[s] not in ids and sp[s] not in vocab_ids,
                f"tokenizer special {s} is a distinct text id")
    c.check(tj["vocab"].get("<unk>") == tj["unk"], "unk id")
    from tokenizer import VOCAB_SYS, Tokenizer
    tok = Tokenizer.load(os.path.join(d, man["tokenizer"]["file"]))
    for task, s in man["templates"]["sys"].items():
        ids_p = tok.encode(man["templates"]["prompt"].format(sys=s, user="x"))
        c.check(ids_p[-1] == sp["</user>"] and ids_p[0] == sp["<system>"], f"prompt for {task} ends with </user>")
        if task in VOCAB_SYS:  # the others' words were never in the tiny vocabulary (tokenizer.py)
            c.check(0 not in tok.encode(s), f"SYS sentence {task} has no unknown word")
    return tok


def check_hf_tokenizer(c, d, man):
    """A Hugging Face tokenizer.json: the manifest's ids and specialTokens are the tokenizer's, BOS is what its
    post-processor adds.  -> ids for the numerics (real.checkpoint.ConformanceIds)."""
    from real.checkpoint import ConformanceIds, tokenizer_facts
    t = man["tokens"]
    facts = tokenizer_facts(d, man["tokenizer"]["file"])
    want = {"<IMAGE>": t["boi"], "</IMAGE>": t["eoi"], "<answer>": t["boa"], "</answer>": t["eoa"],
            man["templates"]["uncondition"]: t["uncondition"]}
    want.update(man["tokenizer"].get("specialTokens", {}))
    for s, i in want.items():
        c.check(facts["ids"].get(s) == i, f"tokenizer {s} == {i} (got {facts['ids'].get(s)})")
    c.check(facts["bos"] == t["bos"], f"tokenizer BOS {facts['bos']} == tokens.bos {t['bos']}")
    c.check(facts["eos_appended"] in (None, t["eos"]), "the post-processor appends no token but EOS")
    for k in ("newline", "answerPad"):
        c.check(t[k] in facts["names"], f"id {t[k]} ({k}) is in the tokenizer's vocabulary")
    c.check(all(i < t["codeOffset"] for i in facts["ids"].values()), "tokenizer ids below the image codes")
    return ConformanceIds(man, facts)


def check_external_data(c, d, man):
    """Every external-data file a graph refers to lies in the model directory and is listed (with its sha256)."""
    from real.onnx_passes import external_files
    for g, f in man["graphs"].items():
        p = os.path.join(d, f)
        if not os.path.exists(p):
            continue
        for loc in external_files(p):
            c.check(os.path.basename(loc) == loc and loc in man["files"],
                    f"{g}: external data {loc} is a file of the manifest")


def _vi_info(vi):
    tt = vi.type.tensor_type
    dims = [("param" if d.HasField("dim_param") else ("value" if d.HasField("dim_value") else "none"))
            for d in tt.shape.dim]
    return tt.elem_type, dims


def kv_names(prefix, n_layers):
    """The per-layer cache tensors of §4.1/4.2 in order: {prefix}_key_0, {prefix}_value_0, {prefix}_key_1, ..."""
    return [f"{prefix}_{kind}_{i}" for i in range(n_layers) for kind in ("key", "value")]


def _expand(spec, n_layers):
    """A signature with its "*past" / "*present" entry expanded to the per-layer cache tensors."""
    out = []
    for name, et, rank, dyn in spec:
        out += [(n, et, rank, dyn) for n in kv_names(name[1:], n_layers)] if name.startswith("*") else [
            (name, et, rank, dyn)]
    return out


def check_graph_signatures(c, d, man):
    graphs = {}
    for g, (ins, outs) in SIGNATURES.items():
        ins, outs = _expand(ins, man["architecture"]["nLayers"]), _expand(outs, man["architecture"]["nLayers"])
        if g in OPTIONAL_GRAPHS and g not in man["graphs"]:
            continue
        p = os.path.join(d, man["graphs"][g])
        try:
            m = onnx.load(p)
            onnx.checker.check_model(m)
        except Exception as e:  # noqa: BLE001
            c.check(False, f"{g}: loads and passes onnx.checker ({e})")
            continue
        opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
        c.check(opset == [17], f"{g}: opset 17 ({opset})")
        inits = {i.name for i in m.graph.initializer}
        gin = [i for i in m.graph.input if i.name not in inits]
        c.check([i.name for i in gin] == [n for n, *_ in ins], f"{g}: inputs {[i.name for i in gin]}")
        c.check([o.name for o in m.graph.output] == [n for n, *_ in outs],
                f"{g}: outputs {[o.name for o in m.graph.output]}")
        for vis, spec in ((gin, ins), (list(m.graph.output), outs)):
            byname = {v.name: v for v in vis}
            for name, et, rank, dyn in spec:
                if name not in byname:
                    continue
                t, dims = _vi_info(byname[name])
                c.check(t == et, f"{g}.{name}: dtype {t} == {et}")
                c.check(len(dims) == rank, f"{g}.{name}: rank {len(dims)} == {rank}")
                for ax in dyn:
                    c.check(ax < len(dims) and dims[ax] != "value", f"{g}.{name}: axis {ax} is dynamic")
        if g == "denoise_segment":
            byname = {v.name: v for v in gin}
            for name, ax in (("keep_counts", 1), ("step_active", 1), ("uniforms", 1), ("remask_noise", 1)):
                if name in byname:
                    dim = byname[name].type.tensor_type.shape.dim[ax]
                    c.check(dim.HasField("dim_value") and dim.dim_value == man.get("segmentSteps"),
                            f"{g}.{name}: axis {ax} == segmentSteps {man.get('segmentSteps')}")
        graphs[g] = onnx_eval.Graph(m)
    arch = man["architecture"]
    return graphs, arch


# ------------------------------------------------------------------------------------------------ numerics

def _guided_np(tl, w):
    """§3's z = Σ_g w_g · logits_g (float32) and d = z − max z widened to float64: tl [R, N, K] -> [B, N, K] each."""
    B, G = w.shape
    R, N, K = tl.shape
    z = (tl.reshape(B, G, N, K) * w[:, :, None, None]).sum(1, dtype=np.float32).astype(np.float32)
    return z, (z - z.max(-1, keepdims=True)).astype(np.float64)


def rule_np(tl, w, tau, u):
    """§3 in NumPy: z and m in float32, d = z - m widened to float64, CDF and confidence in float64, p rounded once
    to float32.  tl [R, N, K] -> (index, prob) [B, N]."""
    z, d = _guided_np(tl, w)
    B, N, K = z.shape
    idx = np.zeros((B, N), np.int64)
    for b in range(B):
        if tau[b] == 0:
            idx[b] = np.argmax(z[b], -1)
        else:
            e = np.exp(d[b] / np.float64(tau[b]))
            C = np.cumsum(e, -1)
            k = (C < u[b][:, None].astype(np.float64) * C[:, -1:]).sum(-1)
            idx[b] = np.minimum(k, K - 1)
    dk = np.take_along_axis(d, idx[..., None], -1)[..., 0]
    p = (np.exp(dk) / np.exp(d).sum(-1)).astype(np.float32)
    return idx, p


def _rows_from(tok, kind):
    """A realistic padded call: sequences of `kind` with guidance branches."""
    import sequences as S
    rng = np.random.RandomState(7)
    grid = rng.randint(0, tok.codebook_size, size=(8, 8))
    if kind == "t2i":
        seqs = []
        for cap in ("a red circle at the top left", "a blue square at the center", "a green triangle at the right"):
            for unc in (False, True):
                ids, tg = S.t2i(tok, cap, uncond=unc)
                ids = list(ids)
                for j, p in enumerate(tg):  # partially decoded
                    if rng.rand() < 0.4:
                        ids[p] = tok.code_offset + int(grid.reshape(-1)[j])
                seqs.append((ids, tg))
        G = 2
        lo, hi = tok.code_offset, tok.vocab_size
    elif kind == "i2i":
        seqs = []
        for instr in ("make it blue", "move it to the bottom"):
            for form in ("cond", "uncondText", "uncondImage"):
                seqs.append(S.i2i(tok, "edit", instr, grid, form=form))
        G = 3
        lo, hi = tok.code_offset, tok.vocab_size
    else:
        seqs = []
        for q in ("what colour is the shape ?", "what shape is it ?", "where is the shape ?", "where is it ?"):
            seqs.append(S.mmu(tok, q, grid, None, 8))
        G = 1
        lo, hi = 0, tok.text_vocab_size
    ids, pos, att = S.pad_rows([s for s, _ in seqs])
    L = ((ids.shape[1] + 15) // 16) * 16
    ids, pos, att = S.pad_rows([s for s, _ in seqs], pad_to=L)
    tp = np.array([t for _, t in seqs], dtype=np.int64)
    return ids, pos, att, tp, G, lo, hi


def check_numerics(c, graphs, arch, tok):
    rng = np.random.RandomState(0)
    nl, nh, hd = arch["nLayers"], arch["nHeads"], arch["dModel"] // arch["nHeads"]
    present, past_names = kv_names("present", nl), kv_names("past", nl)
    cases = [("t2i", [[1.0, 0.0], [3.0, -2.0], [1.5, -0.5]], [0.0, 1.0, 0.7]),
             ("i2i", [[2.0, -0.5, -0.5], [1.0, 0.0, 0.0]], [0.9, 0.0]),
             ("mmu", [[1.0]] * 4, [0.0, 0.5, 0.0, 1.2])]
    for kind, w, tau in cases:
        ids, pos, att, tp, G, lo, hi = _rows_from(tok, kind)
        w = np.array(w, np.float32)
        tau = np.array(tau, np.float32)
        B = w.shape[0]
        N = tp.shape[1]
        u = ((rng.randint(0, 1 << 24, size=(B, N)) + 0.5) / (1 << 24)).astype(np.float32)
        vr = np.array([lo, hi], np.int64)
        den = graphs["denoise"].run(dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp,
                                         guidance_weights=w, vocab_range=vr, temperature=tau, uniforms=u))
        R, L = ids.shape
        K = hi - lo
        c.check(den["sample_index"].shape == (B, N) and den["sample_index"].dtype == np.int64,
                f"{kind}: denoise sample_index [B, N] int64")
        c.check(den["sample_prob"].shape == (B, N) and den["sample_prob"].dtype == np.float32,
                f"{kind}: denoise sample_prob [B, N] float32")
        c.check(den["row_max"].shape == (R, L), f"{kind}: denoise row_max [R, L]")
        c.check(all(den[n].shape == (R, nh, L, hd) for n in present), f"{kind}: present_* [R, nHeads, L, headDim]")
        c.check(den["target_logits"].shape == (R, N, K), f"{kind}: target_logits [R, N, K]")
        fl = graphs["forward_logits"].run(dict(input_ids=ids, position_ids=pos, attention_mask=att))["logits"]
        c.check(fl.shape == (R, L, arch["vocabSize"]), f"{kind}: forward_logits [R, L, V]")
        sl = fl[..., lo:hi]
        ref_tl = np.take_along_axis(sl, tp[..., None], 1)
        c.check(np.allclose(den["target_logits"], ref_tl, atol=1e-4, rtol=1e-4),
                f"{kind}: target_logits == forward_logits at the targets "
                f"(max diff {np.abs(den['target_logits'] - ref_tl).max():.2e})")
        valid = att.astype(bool)
        c.check(np.allclose(den["row_max"][valid], sl.max(-1)[valid], atol=1e-4),
                f"{kind}: row_max == max of the slice")
        ri, rp = rule_np(ref_tl.astype(np.float32), w, tau, u)
        same = den["sample_index"] == ri
        c.check(same.all(), f"{kind}: denoise sample_index == §3 on forward_logits ({same.mean():.4f})")
        c.check(np.allclose(den["sample_prob"][same], rp[same], rtol=1e-4, atol=1e-6),
                f"{kind}: denoise sample_prob == §3 on forward_logits")
        sh = graphs["sample_head"].run(dict(logits=den["target_logits"], guidance_weights=w, temperature=tau,
                                            uniforms=u))
        c.check(np.array_equal(sh["sample_index"], den["sample_index"]), f"{kind}: sample_head index == denoise")
        c.check(np.allclose(sh["sample_prob"], den["sample_prob"], rtol=1e-6, atol=0),
                f"{kind}: sample_head prob == denoise")
        if "denoise_device" in graphs:
            check_device_draw(c, graphs, kind, den, dict(input_ids=ids, position_ids=pos, attention_mask=att,
                                                          target_positions=tp, guidance_weights=w, vocab_range=vr,
                                                          temperature=tau, uniforms=u))
        # partial over every position (garbage cache) == full step
        qi = np.tile(np.arange(L, dtype=np.int64), (R, 1))
        past = {n: rng.randn(R, nh, L, hd).astype(np.float32) for n in past_names}
        pa = graphs["denoise_partial"].run(dict(input_ids=ids, query_index=qi, position_ids=pos,
                                                attention_mask=att, vocab_range=vr, **past))
        c.check(pa["logits"].shape == (R, L, K) and pa["new_kv"].shape == (nl, 2, R, nh, L, hd),
                f"{kind}: partial shapes")
        c.check(np.allclose(pa["logits"][valid], sl[valid], atol=1e-4, rtol=1e-4),
                f"{kind}: partial step over every position == full step "
                f"(max diff {np.abs(pa['logits'][valid] - sl[valid]).max():.2e})")
        c.check(all(np.allclose(pa["new_kv"][j // 2, j % 2], den[n], atol=1e-5, rtol=1e-5)
                    for j, n in enumerate(present)), f"{kind}: partial new_kv == full step present_*")
        c.check(np.allclose(pa["row_max"][valid], den["row_max"][valid], atol=1e-4), f"{kind}: partial row_max")
        # partial over a subset against the full step's own cache == full step there
        S = 5
        qs = np.stack([rng.choice(int(valid[r].sum()), S, replace=False) for r in range(R)]).astype(np.int64)
        pb = graphs["denoise_partial"].run(dict(
            input_ids=np.take_along_axis(ids, qs, 1), query_index=qs, position_ids=np.take_along_axis(pos, qs, 1),
            attention_mask=att, vocab_range=vr, **{p: den[n] for p, n in zip(past_names, present)}))
        ref = np.take_along_axis(sl, qs[..., None], 1)
        c.check(np.allclose(pb["logits"], ref, atol=1e-4, rtol=1e-4), f"{kind}: partial subset step == full step")
        c.check(all(np.allclose(pb["new_kv"][j // 2, j % 2], np.take_along_axis(den[n], qs[:, None, :, None], 2),
                                atol=1e-5, rtol=1e-5) for j, n in enumerate(present)), f"{kind}: partial subset new_kv")


def cdf_distance_np(tl, w, tau, u, idx):
    """For each draw at τ > 0: how far (as a share of the mass) the exact §3 threshold u·C_last lies outside the exact
    CDF interval [C_{k-1}, C_k] of the token k a graph drew (0 when the exact rule draws k too); 0 at τ = 0."""
    _, d = _guided_np(tl, w)
    B, N, _ = d.shape
    out = np.zeros((B, N))
    for b in range(B):
        if tau[b] == 0:
            continue
        C = np.cumsum(np.exp(d[b] / np.float64(tau[b])), -1)
        t = u[b].astype(np.float64) * C[:, -1]
        k = idx[b]
        lo = np.where(k > 0, np.take_along_axis(C, np.maximum(k - 1, 0)[:, None], -1)[:, 0], 0.0)
        hi = np.take_along_axis(C, k[:, None], -1)[:, 0]
        out[b] = np.maximum(np.maximum(lo - t, t - hi), 0.0) / C[:, -1]
    return out


def check_device_draw(c, graphs, kind, den, feeds):
    """`denoise_device` is `denoise` with the float32 draw (§3.1): the same logits, row max and cache; the same greedy
    tokens at τ = 0; at τ > 0 every draw the exact rule's (or one whose exact CDF interval lies within
    DEVICE_DRAW_CDF_TOL of the threshold); `sample_head_device` matches it."""
    dev = graphs["denoise_device"].run(feeds)
    c.check(all(np.allclose(dev[n], den[n], atol=1e-6, rtol=1e-6) for n in den if n not in ("sample_index",
                                                                                           "sample_prob")),
            f"{kind}: denoise_device logits, row max and K/V == denoise")
    greedy = feeds["temperature"] == 0
    same = dev["sample_index"] == den["sample_index"]
    c.check(same[greedy].all(), f"{kind}: denoise_device greedy tokens == denoise")
    far = cdf_distance_np(dev["target_logits"], feeds["guidance_weights"], feeds["temperature"], feeds["uniforms"],
                          dev["sample_index"])
    c.check(far.max() <= DEVICE_DRAW_CDF_TOL,
            f"{kind}: denoise_device draws the exact rule's token or a neighbour within float32 rounding of the CDF "
            f"({same.mean():.4f} the same; farthest threshold {far.max():.1e} of the mass outside the token's interval)")
    c.check(np.allclose(dev["sample_prob"][same], den["sample_prob"][same], rtol=1e-5, atol=1e-7),
            f"{kind}: denoise_device sample_prob == denoise (float32 sums)")
    sh = graphs["sample_head_device"].run(dict(logits=dev["target_logits"], guidance_weights=feeds["guidance_weights"],
                                               temperature=feeds["temperature"], uniforms=feeds["uniforms"]))
    c.check(np.array_equal(sh["sample_index"], dev["sample_index"]), f"{kind}: sample_head_device index == denoise_device")
    c.check(np.allclose(sh["sample_prob"], dev["sample_prob"], rtol=1e-6, atol=0),
            f"{kind}: sample_head_device prob == denoise_device")


# ------------------------------------------------------------------------------------------------ the GPU path (§4.6)

def quantile_np(values, q):
    """libs/diffusion cache-policy.ts quantile: linear interpolation in float64."""
    s = np.sort(np.asarray(values, np.float64))
    n = len(s)
    pos = q * (n - 1)
    lo = int(np.floor(pos))
    hi = min(lo + 1, n - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def remask_np(tok, index, prob, lo, keep_n, noise, mask):
    """One sequence's MaskGIT commit (libs/diffusion sampler.ts maskgitRemask), all arrays [N]."""
    out = np.array(tok, np.int64)
    masked = np.nonzero(out == mask)[0]
    if len(masked) == 0:
        return out
    out[masked] = lo + index[masked]
    scores = np.log(np.maximum(prob[masked].astype(np.float64), 1e-20)) + noise[masked]
    cutoff = np.sort(scores)[min(max(int(keep_n), 0), len(masked) - 1)]
    out[masked[scores < cutoff]] = mask
    return out


def host_segment(full, partial, head, f, mask):
    """The CPU ML-Cache path (libs/diffusion/src/engine.ts with `denoise`, `denoise_partial`, `sample_head`) over the
    steps of one segment, on the inputs `f` of `denoise_segment`: every row runs every step (rows are independent),
    a sequence commits only on its active steps. -> tokens [B, N] after the segment.

    full(ids, pos, att, tp, w, vr, tau, u) -> (index, prob, row_max, kv, target_logits)
    partial(ids_s, query_index, pos_s, kv, att, vr) -> (logits, row_max, new_kv [nLayers, 2, R, nHeads, S, headDim])
    (kv: the per-layer cache tensors [R, nHeads, L, headDim] in kv_names order)
    head(target_logits, w, tau, u) -> (index, prob)
    """
    ids = np.array(f["input_ids"], np.int64)
    pos, att, tp = f["position_ids"], f["attention_mask"], f["target_positions"]
    w, vr, tau = f["guidance_weights"], f["vocab_range"], f["temperature"]
    B, G = w.shape
    R, L = ids.shape
    N = tp.shape[1]
    T = f["keep_counts"].shape[1]
    lens = att.sum(1)
    tok = np.take_along_axis(ids, tp, 1)[::G].copy()
    kv = rm = tl = None
    for s in range(T):
        u = f["uniforms"][:, s]
        if s == 0:
            index, prob, rm, kv, tl = full(ids, pos, att, tp, w, vr, tau, u)
            rm, kv, tl = rm.copy(), [p.copy() for p in kv], tl.copy()
        else:
            sel = [[i for i in range(lens[r]) if np.float64(rm[r, i]) <= quantile_np(rm[r, :lens[r]],
                                                                                  1 - f["cache_ratio"][r // G])]
                   for r in range(R)]
            S = max(len(x) for x in sel)
            qi = np.array([x + [x[0]] * (S - len(x)) for x in sel], np.int64)
            logits, rm_s, new_kv = partial(np.take_along_axis(ids, qi, 1), qi, np.take_along_axis(pos, qi, 1), kv,
                                           att, vr)
            for r in range(R):
                tpos = {int(p): n for n, p in enumerate(tp[r])}
                for j, i in enumerate(sel[r]):
                    for p, plane in enumerate(kv):
                        plane[r, :, i] = new_kv[p // 2, p % 2, r, :, j]
                    rm[r, i] = rm_s[r, j]
                    if i in tpos:
                        tl[r, tpos[i]] = logits[r, j]
            index, prob = head(tl, w, tau, u)
        for b in range(B):
            if f["step_active"][b, s]:
                tok[b] = remask_np(tok[b], index[b], prob[b], vr[0], f["keep_counts"][b, s], f["remask_noise"][b, s],
                                   mask)
        for r in range(R):
            ids[r, tp[r]] = tok[r // G]
    return tok


def segment_case(tok, kind, steps, seed):
    """A realistic `denoise_segment` call: sequences partly decoded (the same cells in every branch row), guidance,
    mixed temperatures, per-sequence segment lengths (active prefixes), MaskGIT keep counts, counter-like uniforms."""
    import sequences as S
    rng = np.random.RandomState(seed)
    grid = rng.randint(0, tok.codebook_size, size=(8, 8))
    if kind == "t2i":
        prompts = ["a red circle at the top left", "a blue square at the center", "a green triangle at the right"]
        forms = [dict(uncond=False), dict(uncond=True)]
        build = lambda p, form, cells: S.t2i(tok, p, codes=grid, mask_cells=cells, **form)  # noqa: E731
        w = [[2.0, -1.0], [1.0, 0.0], [1.5, -0.5]]
        tau = [0.0, 1.0, 0.7]
    else:
        prompts = ["make it blue", "move it to the bottom"]
        forms = [dict(form="cond"), dict(form="uncondText"), dict(form="uncondImage")]
        build = lambda p, form, cells: S.i2i(tok, "edit", p, grid, out_codes=grid, mask_cells=cells, **form)  # noqa
        w = [[2.0, -0.5, -0.5], [1.0, 0.0, 0.0]]
        tau = [1.0, 0.0]
    B, G = len(prompts), len(forms)
    rows, tps = [], []
    for b, p in enumerate(prompts):
        cells = rng.rand(8, 8) < (0.9 if b == 0 else 0.5)  # masked cells of this sequence
        for form in forms:
            ids, tg = build(p, form, cells)
            rows.append(ids)
            tps.append(tg)
    L = ((max(len(r) for r in rows) + 15) // 16) * 16
    ids, pos, att = S.pad_rows(rows, pad_to=L)
    tp = np.array(tps, np.int64)
    N = tp.shape[1]
    n_steps = [steps, max(1, steps - 2), 1][:B]
    active = np.array([[1 if s < n else 0 for s in range(steps)] for n in n_steps], np.int64)
    n0 = [(ids[b * G][tp[b * G]] == tok.mask).sum() for b in range(B)]
    keep = np.array([[int(n0[b] * np.cos(np.pi / 2 * (s + 1) / (steps + 2))) for s in range(steps)] for b in range(B)],
                    np.int64)
    u = ((rng.randint(0, 1 << 23, size=(B, steps, N)) + 0.5) / (1 << 23)).astype(np.float32)
    g = -np.log(-np.log((rng.randint(0, 1 << 23, size=(B, steps, N)) + 0.5) / (1 << 23)))
    return dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp,
                guidance_weights=np.array(w, np.float32), vocab_range=np.array([tok.code_offset, tok.vocab_size]),
                temperature=np.array(tau, np.float32), cache_ratio=np.full(B, 0.9), keep_counts=keep,
                step_active=active, uniforms=u, remask_noise=np.array(tau, np.float64)[:, None, None] * g)


def graph_steps(graphs, n_layers):
    """The host path's three step functions over the exported graphs (onnx_eval)."""
    present, past = kv_names("present", n_layers), kv_names("past", n_layers)

    def full(ids, pos, att, tp, w, vr, tau, u):
        o = graphs["denoise"].run(dict(input_ids=ids, position_ids=pos, attention_mask=att, target_positions=tp,
                                       guidance_weights=w, vocab_range=vr, temperature=tau, uniforms=u))
        return o["sample_index"], o["sample_prob"], o["row_max"], [o[n] for n in present], o["target_logits"]

    def partial(ids_s, qi, pos_s, kv, att, vr):
        o = graphs["denoise_partial"].run(dict(input_ids=ids_s, query_index=qi, position_ids=pos_s,
                                               attention_mask=att, vocab_range=vr, **dict(zip(past, kv))))
        return o["logits"], o["row_max"], o["new_kv"]

    def head(tl, w, tau, u):
        o = graphs["sample_head"].run(dict(logits=tl, guidance_weights=w, temperature=tau, uniforms=u))
        return o["sample_index"], o["sample_prob"]
    return full, partial, head


def check_segment(c, graphs, man, tok):
    """`denoise_segment` against the CPU path run step by step with the other graphs and the host's rules."""
    seg = graphs["denoise_segment"]
    T = man["segmentSteps"]
    mask = man["tokens"]["mask"]
    full, partial, head = graph_steps(graphs, man["architecture"]["nLayers"])
    for kind, seed in (("t2i", 1), ("i2i", 2)):
        f = segment_case(tok, kind, T, seed)
        B, N = f["keep_counts"].shape[0], f["target_positions"].shape[1]
        R, L = f["input_ids"].shape
        # one active step = `denoise` + the host's remask
        one = dict(f, step_active=np.zeros_like(f["step_active"]))
        one["step_active"][:, 0] = 1
        o1 = seg.run(one)
        c.check(o1["tokens"].shape == (B, N) and o1["tokens"].dtype == np.int64, f"{kind}: segment tokens [B, N] int64")
        c.check(o1["sample_prob"].shape == (B, N) and o1["sample_prob"].dtype == np.float32,
                f"{kind}: segment sample_prob [B, N] float32")
        c.check(o1["row_max"].shape == (R, L) and o1["row_max"].dtype == np.float32, f"{kind}: segment row_max [R, L]")
        index, prob, rm, _, _ = full(f["input_ids"], f["position_ids"], f["attention_mask"], f["target_positions"],
                                     f["guidance_weights"], f["vocab_range"], f["temperature"], f["uniforms"][:, 0])
        G = R // B
        start = np.take_along_axis(f["input_ids"], f["target_positions"], 1)[::G]
        want = np.stack([remask_np(start[b], index[b], prob[b], f["vocab_range"][0], f["keep_counts"][b, 0],
                                   f["remask_noise"][b, 0], mask) for b in range(B)])
        c.check(np.array_equal(o1["tokens"], want), f"{kind}: a one-step segment == denoise + host remask")
        c.check(np.array_equal(o1["sample_prob"], prob), f"{kind}: one-step segment sample_prob == denoise")
        valid = f["attention_mask"].astype(bool)
        c.check(np.array_equal(o1["row_max"][valid], rm[valid]), f"{kind}: one-step segment row_max == denoise")
        # no active step: nothing changes
        none = seg.run(dict(f, step_active=np.zeros_like(f["step_active"])))
        c.check(np.array_equal(none["tokens"], start), f"{kind}: a segment with no active step changes nothing")
        # whole segments with per-sequence lengths == the CPU ML-Cache path step by step
        o = seg.run(f)
        ref = host_segment(full, partial, head, f, mask)
        changed = (o["tokens"] != start).sum()
        c.check(changed > 0 and np.array_equal(o["tokens"], ref),
                f"{kind}: segment of {T} steps == CPU ML-Cache path ({(o['tokens'] != ref).sum()} of {B * N} tokens "
                f"differ; {changed} committed)")


def check_vq(c, d, graphs, codebook=None):
    wpath = os.path.join(d, "world.json")
    enc, dec = graphs.get("vq_encode"), graphs.get("vq_decode")
    if enc is None or dec is None:
        return
    rng = np.random.RandomState(1)
    codes = rng.randint(0, 256, size=(2, 3, 5)).astype(np.int64)
    px = dec.run(dict(codes=codes))["pixels"]
    c.check(px.shape == (2, 3, 48, 80) and px.dtype == np.float32, "vq_decode [B, 3, 16Hg, 16Wg] float32")
    c.check(px.min() >= 0 and px.max() <= 1, "vq_decode output in [0, 1]")
    if not os.path.exists(wpath):
        # no world to round-trip (a learned VQ such as the real one or its twin): shapes, range, determinism
        imgs = np.random.RandomState(2).rand(2, 3, 32, 48).astype(np.float32)
        cd = enc.run(dict(pixels=imgs))["codes"]
        c.check(cd.shape == (2, 2, 3) and cd.dtype == np.int64, "vq_encode [B, H/16, W/16] int64")
        c.check(cd.min() >= 0 and (codebook is None or cd.max() < codebook), "vq_encode codes in [0, codebookSize)")
        c.check(np.array_equal(enc.run(dict(pixels=imgs))["codes"], cd), "vq_encode is deterministic")
        c.check(dec.run(dict(codes=cd))["pixels"].shape == imgs.shape, "vq_decode(vq_encode(x)) has x's shape")
        return
    import world
    with open(wpath) as f:
        wj = json.load(f)
    c.check(wj == json.loads(json.dumps(world.world_json())), "world.json == world.py's world")
    combos = world.ALL_COMBOS[::7]
    imgs = np.stack([world.to_chw01(world.render(*cb)) for cb in combos]).astype(np.float32)
    cd = enc.run(dict(pixels=imgs))["codes"]
    c.check(cd.shape == (len(combos), 8, 8) and cd.dtype == np.int64, "vq_encode [B, Hg, Wg] int64")
    rt = dec.run(dict(codes=cd))["pixels"]
    c.check(np.abs(rt - imgs).max() < 1e-6, "vq_decode(vq_encode(x)) == x on world images")
    c.check(np.array_equal(enc.run(dict(pixels=rt))["codes"], cd), "vq_encode(vq_decode(c)) == c")
    crop = np.ascontiguousarray(imgs[:3, :, 16:64, 0:96])
    cc = enc.run(dict(pixels=crop))["codes"]
    c.check(cc.shape == (3, 3, 6) and np.array_equal(cc, cd[:3, 1:4, 0:6]), "vq_encode with other H, W")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    numerics = "--signatures-only" not in argv
    argv = [a for a in argv if a != "--signatures-only"]
    if len(argv) != 1:
        print("usage: conformance.py [--signatures-only] MODEL_DIR", file=sys.stderr)
        return 2
    d = argv[0]
    c = Checker()
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
    except Exception as e:  # noqa: BLE001
        print(f"FAIL manifest.json: {e}")
        return 1
    try:
        _schema(c, man, SCHEMA, "manifest")
        if not c.failures:
            check_files(c, d, man)
            check_external_data(c, d, man)
            tok = check_ids(c, d, man)
            graphs, arch = check_graph_signatures(c, d, man)
            if numerics and tok is not None and all(g in graphs for g in ("denoise", "denoise_partial",
                                                                          "sample_head", "forward_logits")):
                check_numerics(c, graphs, arch, tok)
                if "denoise_segment" in graphs:
                    check_segment(c, graphs, man, tok)
            if numerics:
                check_vq(c, d, graphs, man["tokens"]["codebookSize"])
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        c.check(False, f"exception: {e!r}")
    if c.failures:
        print(f"conformance: {c.passes} passed, {len(c.failures)} failed")
        return 1
    print(f"conformance: {c.passes} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
