"""Export a checkpoint (LLM + VQ, loaded by checkpoint.py / vqgan.py) to the model directories the server loads:
`OUT/fp32/` and `OUT/fp16/`, each a complete model directory of docs/model-interface.md (manifest, tokenizer, the seven
graphs, the five device-resident ML-Cache graphs of §4.7, one shared external-data file `weights.bin`).  The VQ graphs
are float32 in both (spec §1.3)."""

import json
import os
import shutil
import tempfile
import time
from types import SimpleNamespace

import onnx
import torch

import export as graphs_mod
from conformance import sha256
# the reference's system prompts and template (spec §1.2); the tiny model uses the same ones
from tokenizer import PROMPT_TEMPLATE, SYS

from . import checkpoint as ckpt
from . import onnx_passes, vqgan

OPSET = graphs_mod.OPSET
TRANSFORMER_GRAPHS = ("denoise", "denoise_partial", "forward_logits", "denoise_segment")
# the device-resident ML-Cache (§4.7; conformance.RESIDENT_GRAPHS): its two transformer graphs get the fp16 pass too
RESIDENT_GRAPHS = graphs_mod.RESIDENT_GRAPHS
FP16_GRAPHS = TRANSFORMER_GRAPHS + ("denoise_device", "denoise_resident")
CACHE_DEFAULTS = {"cacheRatio": 0.9, "warmupRatio": 0.3, "refreshInterval": 5}


def _export(module, args, path, ins, outs, dyn):
    # no constant folding: initializers stay the checkpoint's parameters (shared across graphs by SharedStore);
    # onnxruntime folds the transposes itself when it opens a session
    torch.onnx.export(module, tuple(args), path, opset_version=OPSET, input_names=ins, output_names=outs,
                      dynamic_axes=dyn, do_constant_folding=False)


def trace_graphs(lm, vq, tokens, tmp, segment_steps, log=print, only=None):
    """Traces the graphs one at a time into `tmp` (torch spills a > 2 GB graph to external files there) and yields
    (name, path); the caller consumes each before the next is traced, so at most one graph's copy of the weights is on
    disk in `tmp` (32 GB at 8B in float32).  `only`: the names to trace (default all; without the VQ ones `vq` may be
    None)."""
    tok = SimpleNamespace(vocab_size=lm.cfg.vocab_size, code_offset=tokens["codeOffset"], mask=tokens["mask"])
    ex = graphs_mod.example_inputs(tok, lm.cfg)
    RL, RN, BN = {0: "R", 1: "L"}, {0: "R", 1: "N"}, {0: "B", 1: "N"}
    G = graphs_mod
    specs = {
        **G.transformer_specs(lm, ex),
        **G.resident_specs(lm, ex),
        "sample_head": (G.SampleHeadGraph(), [torch.randn(4, 7, 16), ex["guidance_weights"], ex["temperature"],
                                              ex["uniforms"]], G.HEAD_IN, G.HEAD_OUT, {
            "logits": {0: "R", 1: "N", 2: "K"}, "guidance_weights": {0: "B", 1: "G"}, "temperature": {0: "B"},
            "uniforms": BN, "sample_index": BN, "sample_prob": BN}),
        "forward_logits": (G.ForwardLogitsGraph(lm), [ex["input_ids"], ex["position_ids"], ex["attention_mask"]],
                           G.FWD_IN, G.FWD_OUT, {"input_ids": RL, "position_ids": RL, "attention_mask": RL,
                                                 "logits": {0: "R", 1: "L"}}),
    }
    if vq is not None:
        specs["vq_encode"] = (vqgan.VQEncodeGraph(vq), [torch.rand(2, 3, 2 * vq.cfg.downsample, 3 * vq.cfg.downsample)],
                              ["pixels"], ["codes"], {"pixels": {0: "B", 2: "H", 3: "W"},
                                                      "codes": {0: "B", 1: "Hg", 2: "Wg"}})
        specs["vq_decode"] = (vqgan.VQDecodeGraph(vq), [torch.randint(0, vq.cfg.num_vq_embeddings, (2, 2, 3))],
                              ["codes"], ["pixels"], {"codes": {0: "B", 1: "Hg", 2: "Wg"},
                                                      "pixels": {0: "B", 2: "H", 3: "W"}})
    if segment_steps:
        sx = G.segment_example(ex, segment_steps)
        specs["denoise_segment"] = (G.SegmentGraph(lm, segment_steps, tokens["mask"]), [sx[k] for k in G.SEGMENT_IN],
                                    G.SEGMENT_IN, G.SEGMENT_OUT, {
            "input_ids": RL, "position_ids": RL, "attention_mask": RL, "target_positions": RN,
            "guidance_weights": {0: "B", 1: "G"}, "temperature": {0: "B"}, "cache_ratio": {0: "B"},
            "keep_counts": {0: "B"}, "step_active": {0: "B"}, "uniforms": {0: "B", 2: "N"},
            "remask_noise": {0: "B", 2: "N"}, "tokens": BN, "sample_prob": BN, "row_max": RL})
    for name, (module, args, ins, outs, dyn) in specs.items():
        if only is not None and name not in only:
            continue
        t0 = time.time()
        d = os.path.join(tmp, name)
        os.makedirs(d, exist_ok=True)
        p = os.path.join(d, name + ".onnx")
        with torch.no_grad():
            _export(module, args, p, ins, outs, dyn)
        log(f"  traced {name} ({time.time() - t0:.1f} s)")
        yield name, p
        shutil.rmtree(d, ignore_errors=True)


class DirWriter:
    """One model directory: graphs (the fp16 pass on the transformer graphs when dtype == 'fp16') into one shared
    store, then the tokenizer files and manifest.json with every file's sha256."""

    def __init__(self, out, dtype):
        self.out, self.dtype = out, dtype
        os.makedirs(out, exist_ok=True)
        self.store = onnx_passes.SharedStore(out)
        self.graphs = []
        self.converted = 0

    def add(self, name, path):
        m = onnx.load(path)  # with torch's spilled external data, if any
        if self.dtype == "fp16" and name in FP16_GRAPHS:
            m, n = onnx_passes.to_fp16(m)
            self.converted += n
        self.store.externalize(m)
        onnx_passes.save(m, os.path.join(self.out, name + ".onnx"))
        self.graphs.append(name)

    def finish(self, files_extra, manifest_base, log=print):
        out = self.out
        for src in files_extra:
            shutil.copy(src, os.path.join(out, os.path.basename(src)))
        man = json.loads(json.dumps(manifest_base))
        man["name"] = f"{man['name']}-{self.dtype}"
        names = [g + ".onnx" for g in self.graphs] + [self.store.name] + [os.path.basename(f) for f in files_extra]
        man["files"] = {f: {"sha256": sha256(os.path.join(out, f)), "bytes": os.path.getsize(os.path.join(out, f))}
                        for f in names}
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(man, f, indent=1)
            f.write("\n")
        st = self.store
        log(f"  {out}: {st.tensors} external tensors, {st.bytes_in / 2**20:.1f} MiB referenced, "
            f"{st.size / 2**20:.1f} MiB stored once ({self.converted} weights float16)")
        return man


def manifest_base(name, version, description, cfg, tokens, special, tokenizer_files, image, segment_steps,
                  length_bucket=64):
    return {
        "interfaceVersion": 2,
        "name": name,
        "version": version,
        "description": description,
        "architecture": cfg.to_dict(),
        "tokens": tokens,
        "tokenizer": dict({"kind": "hf", "file": os.path.basename(tokenizer_files[0]), "specialTokens": special},
                          **({"config": os.path.basename(tokenizer_files[1])} if len(tokenizer_files) > 1 else {})),
        "templates": {"prompt": PROMPT_TEMPLATE, "uncondition": "<uncondition>",
                      "sys": dict(SYS)},
        "image": image,
        "lengthBucket": length_bucket,
        # the reference scripts' defaults (spec §2.2, §2.4, §2.6, §3)
        "defaults": {
            "t2i": {"steps": 64, "cfg": 4.0, "temperature": 1.0},
            "i2i": {"steps": 64, "cfg": 2.5, "cfgImage": 4.0, "temperature": 1.0},
            "mmu": {"steps": 128, "genLength": 1024, "blockLength": 256, "cfg": 0, "temperature": 0},
            "cache": dict(CACHE_DEFAULTS),
        },
        "limits": {"maxSteps": 256, "maxCfg": 20, "maxTemperature": 5, "maxGenLength": 1024, "maxBatchRows": 8},
        "graphs": dict({g: g + ".onnx" for g in ("denoise", "denoise_partial", "sample_head", "forward_logits",
                                                 "vq_encode", "vq_decode", *RESIDENT_GRAPHS)},
                       **({"denoise_segment": "denoise_segment.onnx"} if segment_steps else {})),
        **({"segmentSteps": segment_steps} if segment_steps else {}),
        "files": {},
    }


def export_all(lm, vq, base, tokenizer_files, out, dtypes=("fp32", "fp16"), log=print):
    t0 = time.time()
    writers = {dt: DirWriter(os.path.join(out, dt), dt) for dt in dtypes}
    with tempfile.TemporaryDirectory(prefix="dimoo-export-", dir=os.path.dirname(os.path.abspath(out))) as tmp:
        for name, path in trace_graphs(lm, vq, base["tokens"], tmp, base.get("segmentSteps"), log):
            for w in writers.values():
                w.add(name, path)
    log(f"  traced and wrote all graphs in {time.time() - t0:.1f} s")
    return {dt: w.finish(tokenizer_files, base, log) for dt, w in writers.items()}


def compare_manifest(man, cfg, tokens, special, vq_cfg):
    """A checkpoint against an existing manifest (e.g. the one a server runs, or the twin's): every difference in the
    architecture, the token ids, the special strings and the codebook.  -> list of differences."""
    diffs = []
    for k, v in cfg.to_dict().items():
        if man["architecture"].get(k) != v:
            diffs.append(f"architecture.{k}: checkpoint {v}, manifest {man['architecture'].get(k)}")
    for k, v in tokens.items():
        if man["tokens"].get(k) != v:
            diffs.append(f"tokens.{k}: checkpoint {v}, manifest {man['tokens'].get(k)}")
    for s, i in sorted(man["tokenizer"].get("specialTokens", {}).items()):
        if special.get(s) != i:
            diffs.append(f"tokenizer {s}: checkpoint {special.get(s)}, manifest {i}")
    if vq_cfg.downsample != man["image"]["gridFactor"]:
        diffs.append(f"VQ downsampling {vq_cfg.downsample}, manifest gridFactor {man['image']['gridFactor']}")
    return diffs


def check_checkpoint(directory, image, log=print, weights=True):
    """Reads and checks config.json, the tokenizer, vqvae/ and (with `weights`) every LLM weight name and shape,
    refusing (CheckpointMismatch / ValueError) on anything the graphs or spec §1.1 do not match.
    -> (cfg, config facts, tokens, specialTokens, tokenizer files, vq)."""
    cfg, facts = ckpt.read_config(directory)
    log(f"config: {cfg.to_dict()} {facts}")
    tok_files = [os.path.join(directory, "tokenizer.json")]
    if os.path.exists(os.path.join(directory, "tokenizer_config.json")):
        tok_files.append(os.path.join(directory, "tokenizer_config.json"))
    tf = ckpt.tokenizer_facts(directory)
    vq = vqgan.load(os.path.join(directory, "vqvae"))
    if vq.cfg.downsample != image["gridFactor"]:
        raise ckpt.CheckpointMismatch(f"VQ downsamples by {vq.cfg.downsample}, the manifest's gridFactor is "
                                      f"{image['gridFactor']}")
    tokens, special = ckpt.check_tokens(tf, cfg.vocab_size, vq.cfg.num_vq_embeddings,
                                        eos_id=facts.get("eos_token_id") or ckpt.EOS_ID)
    log(f"tokenizer ({tf['model']}): BOS {tf['bos']} ({tf['bos_string']}), template ids "
        f"{ {s: special[s] for s in ckpt.TEMPLATE_STRINGS} }, newline {tokens['newline']} = "
        f"{tf['names'].get(tokens['newline'])!r}, answerPad {tokens['answerPad']} = {tf['names'].get(tokens['answerPad'])!r}")
    if weights:
        from .safetensors_io import Checkpoint
        ck = Checkpoint(directory)
        want = ckpt.expected_shapes(cfg)
        have = {n: tuple(ck.info(n)[1]) for n in ck.names()}
        diffs = [f"{n}: {have.get(n)} in the checkpoint, {s} expected" for n, s in sorted(want.items())
                 if have.get(n) != s] + [f"unexpected weight {n}" for n in sorted(set(have) - set(want))]
        if diffs:
            raise ckpt.CheckpointMismatch(f"{directory}: " + "; ".join(diffs[:8]) + (" …" if len(diffs) > 8 else ""))
        log(f"weights: {len(have)} tensors ({', '.join(ck.dtypes())}), names and shapes as the graphs expect")
    return cfg, facts, tokens, special, tok_files, vq


def export_checkpoint(directory, out, image, length_bucket, name, version, description, dtypes=("fp32", "fp16"),
                      segment_steps=CACHE_DEFAULTS["refreshInterval"], log=print, fused_attention=False):
    """The whole path from a checkpoint directory (hub layout) to OUT/<dtype>/: reads and checks config.json, the
    weights, the tokenizer and vqvae/ (refusing on any mismatch with spec §1.1 / the graphs), then exports; with
    fused_attention each layer's attention is one com.microsoft MultiHeadAttention node (tools/model/fused_attention.py,
    for the WebGPU provider's attention kernel). -> {dtype: manifest}."""
    t0 = time.time()
    cfg, facts, tokens, special, tok_files, vq = check_checkpoint(directory, image, log, weights=False)
    t1 = time.time()
    lm, stored = ckpt.load_lm(directory, cfg)
    lm.cfg.fused_attention = fused_attention
    log(f"weights loaded ({', '.join(stored)} -> float32) in {time.time() - t1:.1f} s")
    base = manifest_base(name, version, description, cfg, tokens, special, tok_files, image, segment_steps,
                         length_bucket)
    mans = export_all(lm, vq, base, tok_files, out, dtypes, log)
    log(f"exported {', '.join(dtypes)} to {out} in {time.time() - t0:.1f} s")
    return mans, lm, vq
