"""Build the scaled-down twin of Lumina-DiMOO from a seed (tools/model/real/twin.py) and export it exactly as a real
checkpoint is exported, then write the PyTorch parity fixture and (optionally) run the conformance test:

    /usr/bin/python3 tools/model/build_twin.py --out models/twin [--seed 0] [--conformance]

Writes OUT/checkpoint/ (hub layout: config.json, model-0000{1,2}-of-00002.safetensors + index, tokenizer.json,
tokenizer_config.json, vqvae/), OUT/fp32/ and OUT/fp16/ (model directories), OUT/parity/ (PyTorch outputs for the
ONNX Runtime parity test, libs/runtime/src/twin.spec.ts) and OUT/build.json (timings, sizes).
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from real import exporter, parity, twin  # noqa: E402

TWIN_IMAGE = {"gridFactor": 16, "minSize": 32, "maxSize": 512, "defaultHeight": 64, "defaultWidth": 64, "maxAspect": 4}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/twin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--conformance", action="store_true",
                    help="run tools/model/conformance.py: fp32 in full, fp16 its files, ids and graph signatures")
    ap.add_argument("--conformance-fp16", action="store_true", help="with --conformance: fp16 numerics too (~1 min)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    out = args.out
    if os.path.exists(out):
        shutil.rmtree(out)
    ck = os.path.join(out, "checkpoint")
    twin.write_twin(ck, seed=args.seed)
    t_ck = time.time() - t0
    print(f"twin checkpoint (seed {args.seed}) written in {t_ck:.1f} s", flush=True)
    mans, lm, vq = exporter.export_checkpoint(
        ck, out, TWIN_IMAGE, 16, "dimoo-twin", f"seed-{args.seed}",
        "Scaled-down twin of Lumina-DiMOO (real vocabulary, ids, templates and VQ layout; 2 layers, d=64; random "
        f"weights from seed {args.seed}): outputs are noise. Rebuilt by tools/model/build_twin.py.",
        log=lambda m: print(m, flush=True))
    t_exp = time.time() - t0 - t_ck
    t1 = time.time()
    fixture = parity.write_fixture(lm, vq, mans["fp32"], os.path.join(out, "parity"))
    t_par = time.time() - t1
    report = {"seed": args.seed, "seconds": {"checkpoint": round(t_ck, 1), "export": round(t_exp, 1),
                                            "parityFixture": round(t_par, 1)},
              "bytes": {d: sum(f["bytes"] for f in m["files"].values()) for d, m in mans.items()},
              "checkpointBytes": sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(ck) for f in fs),
              "parity": fixture["python"]}
    if args.conformance:
        import conformance
        for d in mans:
            t2 = time.time()
            # the fp16 directory's numerics through the NumPy interpreter take about a minute: --conformance-fp16 runs them
            quick = d != "fp32" and not args.conformance_fp16
            rc = conformance.main((["--signatures-only"] if quick else []) + [os.path.join(out, d)])
            report["seconds"][f"conformance_{d}"] = round(time.time() - t2, 1)
            if rc:
                print(f"conformance of {d} failed", file=sys.stderr)
                return rc
    report["seconds"]["total"] = round(time.time() - t0, 1)
    with open(os.path.join(out, "build.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
