"""The checkpoint's LLM config, weights and tokenizer, checked against what the project serves (spec §1.1, §4.1).

A real Lumina-DiMOO checkpoint directory (as on the hub) holds `config.json`, `model*.safetensors` (+ index),
`tokenizer.json` (+ `tokenizer_config.json`) and `vqvae/`.  Nothing here trusts the spec's *inferred* facts silently:
`read_config` refuses architectures model.py does not implement, `load_lm` refuses missing, unexpected or mis-shaped
weights, and `tokenizer_facts` + `check_tokens` refuse a tokenizer whose special ids differ from the spec's (spec §10
lists what the public sources could not settle: the ids of <system>/<user>, BOS, the vocabulary width).
"""

import json
import os
import re

import numpy as np
import torch

from model import Config, DimooLM

from .safetensors_io import Checkpoint

# spec §1.1 (the ids the reference code hard-codes)
REAL_TOKENS = {
    "textVocabSize": 126356, "codeOffset": 126356, "codebookSize": 8192, "mask": 126336, "newline": 126084,
    "boi": 126349, "eoi": 126350, "uncondition": 126351, "boa": 126354, "eoa": 126355, "answerPad": 126339,
}
# special strings whose ids the tokenizer must agree on (the strings are in the reference's code)
SPECIAL_STRINGS = {"<IMAGE>": "boi", "</IMAGE>": "eoi", "<uncondition>": "uncondition", "<answer>": "boa",
                   "</answer>": "eoa", "<|mdm_mask|>": "mask"}
TEMPLATE_STRINGS = ["<system>", "</system>", "<user>", "</user>"]
EOS_ID = 126081  # LLaDA's EOS (config eos_token_id)



class CheckpointMismatch(ValueError):
    """The checkpoint is not what the manifest / the project's graphs assume: refuse, listing every difference."""


# ------------------------------------------------------------------------------------------------ config.json

# key: (expected value or None for "read it", what the graphs implement)
_SUPPORTED = {
    "block_type": ("llama", "LLaDALlamaBlock (SwiGLU MLP)"),
    "activation_type": ("silu", "SwiGLU with SiLU"),
    "layer_norm_type": ("rms", "RMSNorm"),
    "include_bias": (False, "no biases"),
    "weight_tying": (False, "untied head ff_out"),
    "rope": (True, "rotary embeddings"),
    "alibi": (False, "no ALiBi"),
    "attention_layer_norm": (False, "no q/k norm"),
    "input_emb_norm": (False, "no embedding norm"),
    "scale_logits": (False, "unscaled logits"),
    "multi_query_attention": (None, ""),
}


def read_config(directory):
    """config.json -> (Config, facts dict).  Raises CheckpointMismatch on an architecture model.py does not implement."""
    with open(os.path.join(directory, "config.json")) as f:
        j = json.load(f)
    bad = []
    for k, (want, what) in _SUPPORTED.items():
        if want is not None and k in j and j[k] != want:
            bad.append(f"{k} = {j[k]!r} (the graphs implement {what}: {want!r})")
    if j.get("multi_query_attention"):
        bad.append("multi_query_attention is set (the graphs implement plain multi-head attention)")
    d, h = j.get("d_model"), j.get("n_heads")
    kv = j.get("n_kv_heads") or h
    if kv != h:
        bad.append(f"n_kv_heads {kv} != n_heads {h} (grouped-query attention is not implemented)")
    ffn = j.get("mlp_hidden_size") or (int(j["mlp_ratio"] * d) if j.get("mlp_ratio") else None)
    for k, v in (("d_model", d), ("n_heads", h), ("n_layers", j.get("n_layers")), ("mlp_hidden_size", ffn)):
        if not isinstance(v, int) or v <= 0:
            bad.append(f"{k} missing or invalid ({v!r})")
    if isinstance(d, int) and isinstance(h, int) and h > 0 and (d % h or (d // h) % 2):
        bad.append(f"d_model {d} is not n_heads {h} x an even head dimension")
    if bad:
        raise CheckpointMismatch("config.json: " + "; ".join(bad))
    vocab = j.get("embedding_size") or j.get("vocab_size")
    cfg = Config(vocab_size=int(vocab), d_model=d, n_layers=j["n_layers"], n_heads=h, ffn_hidden=ffn,
                 rope_theta=float(j.get("rope_theta", 500000.0)), eps=float(j.get("rms_norm_eps", 1e-5)))
    facts = {k: j.get(k) for k in ("vocab_size", "embedding_size", "rope_theta", "rms_norm_eps", "max_sequence_length",
                                   "mask_token_id", "eos_token_id", "pad_token_id")}
    if j.get("mask_token_id") not in (None, REAL_TOKENS["mask"]):
        raise CheckpointMismatch(f"config.json: mask_token_id {j['mask_token_id']} != {REAL_TOKENS['mask']} (spec §1.1)")
    return cfg, facts


def config_json(cfg):
    """A LLaDA-style config.json for `cfg` (the twin writes this; read_config reads it back)."""
    return {
        "architectures": ["LLaDAForMultiModalGeneration"], "model_type": "llada", "d_model": cfg.d_model,
        "n_heads": cfg.n_heads, "n_kv_heads": cfg.n_heads, "n_layers": cfg.n_layers, "mlp_hidden_size": cfg.ffn_hidden,
        "mlp_ratio": cfg.ffn_hidden // cfg.d_model, "activation_type": "silu", "block_type": "llama",
        "layer_norm_type": "rms", "rms_norm_eps": cfg.eps, "rope": True, "rope_theta": cfg.rope_theta,
        "rope_full_precision": True, "alibi": False, "include_bias": False, "weight_tying": False,
        "scale_logits": False, "attention_layer_norm": False, "input_emb_norm": False, "multi_query_attention": None,
        "vocab_size": cfg.vocab_size, "embedding_size": cfg.vocab_size, "max_sequence_length": 4096,
        "mask_token_id": REAL_TOKENS["mask"], "eos_token_id": EOS_ID, "pad_token_id": EOS_ID,
        "torch_dtype": "bfloat16",
    }


def expected_shapes(cfg):
    """{checkpoint weight name: shape} of model.py's DimooLM for `cfg` (spec §4.1), without allocating it."""
    d, f, V = cfg.d_model, cfg.ffn_hidden, cfg.vocab_size
    out = {"model.transformer.wte.weight": (V, d), "model.transformer.ln_f.weight": (d,),
           "model.transformer.ff_out.weight": (V, d)}
    for i in range(cfg.n_layers):
        b = f"model.transformer.blocks.{i}."
        out.update({b + "attn_norm.weight": (d,), b + "ff_norm.weight": (d,), b + "q_proj.weight": (d, d),
                    b + "k_proj.weight": (d, d), b + "v_proj.weight": (d, d), b + "attn_out.weight": (d, d),
                    b + "ff_proj.weight": (f, d), b + "up_proj.weight": (f, d), b + "ff_out.weight": (d, f)})
    return out


def load_lm(directory, cfg):
    """DimooLM with the checkpoint's weights (bf16/fp16/fp32 -> float32, exact), strict names and shapes."""
    ck = Checkpoint(directory)
    lm = DimooLM(cfg)
    want = lm.state_dict()
    have = set(ck.names())
    missing = sorted(set(want) - have)
    extra = sorted(have - set(want))
    problems = []
    if missing:
        problems.append(f"missing weights {missing[:6]}{' …' if len(missing) > 6 else ''} ({len(missing)})")
    if extra:
        problems.append(f"unexpected weights {extra[:6]}{' …' if len(extra) > 6 else ''} ({len(extra)})")
    for n, t in want.items():
        if n in have and tuple(ck.info(n)[1]) != tuple(t.shape):
            problems.append(f"{n}: shape {ck.info(n)[1]}, expected {tuple(t.shape)}")
    if problems:
        raise CheckpointMismatch(f"{directory}: " + "; ".join(problems))
    with torch.no_grad():
        for n, t in want.items():
            t.copy_(torch.from_numpy(ck.get(n)))
    lm.eval()
    return lm, ck.dtypes()


def lm_tensors(lm):
    """The checkpoint's tensors {name: float32 array} (what a twin writes to safetensors)."""
    return {k: v.detach().numpy().astype(np.float32) for k, v in lm.state_dict().items()}


# ------------------------------------------------------------------------------------------------ tokenizer.json

def _template_ends(post):
    """-> (BOS string or None, EOS string or None) added by a TemplateProcessing post-processor (single sequence)."""
    if not post:
        return None, None
    if post.get("type") == "Sequence":
        for p in post.get("processors", []):
            b, e = _template_ends(p)
            if b or e:
                return b, e
        return None, None
    if post.get("type") != "TemplateProcessing":
        return None, None
    single = post.get("single", [])
    first = single[0].get("SpecialToken", {}).get("id") if single else None
    last = single[-1].get("SpecialToken", {}).get("id") if len(single) > 1 else None
    return first, last


def tokenizer_facts(directory, file="tokenizer.json"):
    """What the manifest needs from a Hugging Face tokenizer.json: token string -> id, BOS/EOS added, reverse names."""
    with open(os.path.join(directory, file)) as f:
        tj = json.load(f)
    ids = dict(tj.get("model", {}).get("vocab", {}) or {})
    for t in tj.get("added_tokens", []):
        ids[t["content"]] = t["id"]
    names = {}
    for s, i in ids.items():
        names.setdefault(i, s)
    bos_s, eos_s = _template_ends(tj.get("post_processor"))
    return {"ids": ids, "names": names, "bos": ids.get(bos_s) if bos_s else None, "bos_string": bos_s,
            "eos_appended": ids.get(eos_s) if eos_s else None, "model": tj.get("model", {}).get("type")}


def check_tokens(facts, vocab_size, codebook_size, eos_id=EOS_ID):
    """Compares the tokenizer and the LM's vocabulary width with spec §1.1; raises CheckpointMismatch listing every
    difference.  -> the manifest's `tokens` and `tokenizer.specialTokens`."""
    t = dict(REAL_TOKENS)
    problems = []
    if t["codeOffset"] + codebook_size != vocab_size:
        problems.append(f"logit width {vocab_size} != codeOffset {t['codeOffset']} + codebook {codebook_size} (spec §1.1: "
                        "the samplers take the image offset as width - 8192, the decoder hard-codes 126356)")
    if codebook_size != t["codebookSize"]:
        problems.append(f"VQ codebook {codebook_size} != {t['codebookSize']}")
    ids = facts["ids"]
    for s, k in SPECIAL_STRINGS.items():
        if ids.get(s) != t[k]:
            problems.append(f"{s} is id {ids.get(s)}, spec §1.1 says {t[k]}")
    for s in TEMPLATE_STRINGS:
        if s not in ids:
            problems.append(f"template token {s} is not in the tokenizer")
        elif not (0 <= ids[s] < t["textVocabSize"]) or ids[s] in {t[k] for k in REAL_TOKENS if k not in
                                                                   ("textVocabSize", "codeOffset", "codebookSize")}:
            problems.append(f"template token {s} has id {ids[s]}, which collides with a special or an image code")
    for k in ("newline", "answerPad"):
        if t[k] not in facts["names"]:
            problems.append(f"id {t[k]} ({k}) is not in the tokenizer's vocabulary")
    if facts["eos_appended"] is not None and facts["eos_appended"] != eos_id:
        problems.append(f"the post-processor appends {facts['eos_appended']}, not EOS {eos_id}")
    above = sorted(i for i in ids.values() if i >= t["codeOffset"])
    if above:
        problems.append(f"{len(above)} tokenizer ids lie in the image code range (first {above[0]})")
    if problems:
        raise CheckpointMismatch("tokenizer does not match spec §1.1: " + "; ".join(problems))
    tokens = dict(t, bos=facts["bos"], eos=eos_id)
    special = {s: ids[s] for s in list(SPECIAL_STRINGS) + TEMPLATE_STRINGS}
    if facts["bos_string"]:
        special[facts["bos_string"]] = facts["bos"]
    return tokens, special


class ConformanceIds:
    """Token ids for the conformance numerics of a model whose tokenizer is a Hugging Face tokenizer.json (no Python
    tokenizer library here): the template's special strings get their real ids; other words map to a vocabulary id
    (the word, or its first byte-level character) — valid ids, not the tokenizer's segmentation, which the TypeScript
    side (libs/runtime HfTokenizer) tests.  Exposes what tools/model/sequences.py reads."""

    def __init__(self, man, facts):
        t = man["tokens"]
        self.man = man
        self.ids = facts["ids"]
        for k in ("mask", "newline", "boi", "eoi", "uncondition", "boa", "eoa", "answerPad"):
            setattr(self, k, t[k])
        self.text_vocab_size = t["textVocabSize"]
        self.code_offset = t["codeOffset"]
        self.codebook_size = t["codebookSize"]
        self.vocab_size = man["architecture"]["vocabSize"]
        self.bos = t["bos"]
        specials = sorted(man["tokenizer"].get("specialTokens", {}), key=len, reverse=True)
        self._split = re.compile("(" + "|".join(re.escape(s) for s in specials) + ")") if specials else None

    def _word(self, w):
        for cand in ("Ġ" + w, w, w[:1]):
            i = self.ids.get(cand)
            if i is not None and 0 <= i < self.text_vocab_size:
                return i
        return 0

    def encode(self, text):
        out = [] if self.bos is None else [self.bos]
        parts = self._split.split(text) if self._split else [text]
        for p in parts:
            if not p:
                continue
            if p in self.ids and p.startswith("<"):
                out.append(self.ids[p])
            else:
                out.extend(self._word(w) for w in p.split())
        return out

    def prompt(self, task, user):
        return self.encode(self.man["templates"]["prompt"].format(sys=self.man["templates"]["sys"][task], user=user))
