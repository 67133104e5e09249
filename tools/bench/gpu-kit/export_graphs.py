#!/usr/bin/env python3
"""The GPU kit's weightless real-width graphs: hidden 4096, 32 heads, SwiGLU 12288, RoPE θ 500000, the real vocabulary
(134,548, image codes [126356, 134548)), 2 and 4 layers, exported by the project's exporter
(tools/model/real/exporter.py: trace_graphs + DirWriter, fp16 variant) and widened to the real vocabulary without
weights (tools/model/real/weightless.py explains why that is exact, tools/model/test_real.py proves it).

    /usr/bin/python3 tools/bench/gpu-kit/export_graphs.py --out .gpu-kit/graphs [--layers 2,4]

Writes OUT/L<n>/: manifest.json (architecture at the real width, `weightless` = the store's size), the graphs
(denoise, denoise_partial, sample_head and the five resident graphs of §4.7), tokenizer.json (the twin's, for the
manifest; the bench feeds ids), and no weights.bin: tools/bench/gpu-kit/fill_weights.py writes it on the device.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "model")))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import onnx  # noqa: E402
import torch  # noqa: E402

from model import Config, DimooLM  # noqa: E402
from real import checkpoint as ckpt, exporter, twin, weightless  # noqa: E402

REAL = dict(d_model=4096, n_heads=32, ffn_hidden=12288, rope_theta=500000.0)
V_REAL = ckpt.REAL_TOKENS["codeOffset"] + ckpt.REAL_TOKENS["codebookSize"]  # 134,548
# the traced vocabulary: primes that no shape of the graphs holds (widen_vocab refuses a constant equal to one)
V_SMALL, OFFSET_SMALL = 1021, 631  # K = 390 in the trace
GRAPHS = ("denoise", "denoise_partial", "sample_head", *exporter.RESIDENT_GRAPHS)
IMAGE = {"gridFactor": 16, "minSize": 256, "maxSize": 2048, "defaultHeight": 1024, "defaultWidth": 1024, "maxAspect": 4}


def export_one(layers, out, dims, seed=0, fused=False, log=print):
    t0 = time.time()
    torch.manual_seed(seed)
    cfg = Config(vocab_size=V_SMALL, n_layers=layers, **dims, **({"fused_attention": True} if fused else {}))
    lm = DimooLM(cfg).eval()
    log(f"L{layers}: {sum(p.numel() for p in lm.parameters()) / 1e6:.0f} M parameters at vocabulary {V_SMALL} "
        f"({time.time() - t0:.1f} s)")
    real_tokens = dict(ckpt.REAL_TOKENS, bos=twin.SPECIALS["<|startoftext|>"], eos=ckpt.EOS_ID)
    trace_tokens = dict(real_tokens, codeOffset=OFFSET_SMALL)
    os.makedirs(out, exist_ok=True)
    writer = exporter.DirWriter(out, "fp16")
    with tempfile.TemporaryDirectory(prefix="dimoo-kit-", dir=os.path.dirname(os.path.abspath(out))) as tmp:
        for name, path in exporter.trace_graphs(lm, None, trace_tokens, tmp, None, log, only=GRAPHS):
            writer.add(name, path)
        tok = os.path.join(tmp, "tokenizer.json")
        with open(tok, "w") as f:
            json.dump(twin.tokenizer_json(), f, ensure_ascii=False)
        base = exporter.manifest_base(f"dimoo-kit-L{layers}", "1", "weightless real-width graphs (tools/bench/gpu-kit)",
                                      cfg, real_tokens, dict(twin.SPECIALS), [tok], IMAGE, None)
        base["graphs"] = {g: g + ".onnx" for g in GRAPHS}
        if fused:
            base["description"] += "; attention as com.microsoft MultiHeadAttention (tools/model/fused_attention.py)"
        writer.finish([tok], base, log)
    del lm
    size, n_ext, widened = weightless.widen_vocab(out, V_SMALL, V_REAL, dims["d_model"],
                                                  forbidden=(OFFSET_SMALL, V_SMALL - OFFSET_SMALL))
    note = (f"random init at vocabulary {V_SMALL}, widened to {V_REAL} ({', '.join(widened)}); "
            "fill on the device with tools/bench/gpu-kit/fill_weights.py")
    man = weightless.rewrite_manifest(out, V_REAL, real_tokens, size, note=note)
    for g in GRAPHS:
        bad = weightless.casts_of_vocab_matrices(onnx.load(os.path.join(out, g + ".onnx"), load_external_data=False),
                                                 V_REAL, dims["d_model"])
        if bad:
            raise SystemExit(f"{g}: the [V, d] matrix is cast as a whole: {bad}")
    log(f"L{layers}: {len(GRAPHS)} graphs, {n_ext} external tensors, store {size / 2**30:.2f} GiB (not written), "
        f"graphs {sum(os.path.getsize(os.path.join(out, g + '.onnx')) for g in GRAPHS) / 2**10:.0f} KiB, "
        f"{time.time() - t0:.0f} s")
    return man


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--layers", default="2,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dims", default=None, help="JSON overriding d_model/n_heads/ffn_hidden (smoke tests only)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="attention as one com.microsoft MultiHeadAttention node per layer (model.Config "
                         "fused_attention; onnxruntime's WebGPU attention kernel): writes OUT/L<n>f")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dims = dict(REAL, **(json.loads(args.dims) if args.dims else {}))
    for n in (int(x) for x in args.layers.split(",")):
        export_one(n, os.path.join(args.out, f"L{n}" + ("f" if args.fused_attention else "")), dims,
                   fused=args.fused_attention, log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
