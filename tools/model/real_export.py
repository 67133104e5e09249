"""Export a real Lumina-DiMOO checkpoint (hub layout) to the project's model directories:

    /usr/bin/python3 tools/model/real_export.py --checkpoint /data/Lumina-DiMOO --out /data/models/dimoo \\
        [--dtypes fp32,fp16] [--segment-steps 5] [--conformance]

Reads config.json, model*.safetensors (+ index), tokenizer.json (+ tokenizer_config.json) and vqvae/; refuses (exit 2,
every difference listed) when the architecture, the weight names/shapes, the vocabulary width or the tokenizer's special
ids differ from what the graphs and spec §1.1 assume; writes OUT/fp32/ and/or OUT/fp16/ (manifest.json, tokenizer,
the seven graphs of docs/model-interface.md and the five device-resident ML-Cache graphs of §4.7, one shared
weights.bin) and OUT/export.json.  See docs/models.md for the machine it needs (memory, disk, time).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from real import exporter  # noqa: E402
from real.checkpoint import CheckpointMismatch  # noqa: E402

REAL_IMAGE = {"gridFactor": 16, "minSize": 256, "maxSize": 2048, "defaultHeight": 1024, "defaultWidth": 1024,
              "maxAspect": 4}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dtypes", default="fp32,fp16")
    ap.add_argument("--segment-steps", type=int, default=exporter.CACHE_DEFAULTS["refreshInterval"],
                    help="unroll of denoise_segment (the GPU ML-Cache path); 0: leave it out")
    ap.add_argument("--name", default="lumina-dimoo")
    ap.add_argument("--version", default="1")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--conformance", action="store_true", help="run conformance.py on each directory (slow at 8B)")
    ap.add_argument("--fused-attention", action="store_true",
                    help="attention as one com.microsoft MultiHeadAttention node per layer (WebGPU's attention kernel; "
                         "docs/models.md §5)")
    ap.add_argument("--check-only", action="store_true",
                    help="check the checkpoint (config, weight names and shapes, tokenizer ids, VQ) and export nothing")
    ap.add_argument("--manifest", help="with --check-only: also compare with this manifest.json (refuse on any "
                    "difference), e.g. the twin's or the one a server runs")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtypes = tuple(d for d in args.dtypes.split(",") if d)
    if not set(dtypes) <= {"fp32", "fp16"}:
        ap.error("--dtypes: fp32 and/or fp16")
    t0 = time.time()
    if args.check_only:
        try:
            cfg, _, tokens, special, _, vq = exporter.check_checkpoint(args.checkpoint, REAL_IMAGE,
                                                                       log=lambda m: print(m, flush=True))
        except (CheckpointMismatch, ValueError) as e:
            print(f"refused: {e}", file=sys.stderr)
            return 2
        if args.manifest:
            with open(args.manifest) as f:
                diffs = exporter.compare_manifest(json.load(f), cfg, tokens, special, vq.cfg)
            if diffs:
                print("refused: the checkpoint differs from " + args.manifest + ": " + "; ".join(diffs), file=sys.stderr)
                return 2
        print("checkpoint ok")
        return 0
    try:
        mans, _, _ = exporter.export_checkpoint(
            args.checkpoint, args.out, REAL_IMAGE, 64, args.name, args.version,
            f"Lumina-DiMOO exported from {os.path.basename(os.path.abspath(args.checkpoint))} by "
            "tools/model/real_export.py", dtypes=dtypes, segment_steps=args.segment_steps or None,
            log=lambda m: print(m, flush=True), fused_attention=args.fused_attention)
    except (CheckpointMismatch, ValueError) as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    report = {"seconds": round(time.time() - t0, 1),
              "bytes": {d: sum(f["bytes"] for f in m["files"].values()) for d, m in mans.items()}}
    if args.conformance:
        import conformance
        for d in dtypes:
            if conformance.main([os.path.join(args.out, d)]):
                return 1
    with open(os.path.join(args.out, "export.json"), "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
