#!/usr/bin/env python3
"""The PyTorch side of the device run: tools/bench/gpu_engine.py (its `main`, in one process, so torch and CUDA start
once) for every (layers, size) the ONNX Runtime side measures, each with its own --time-budget-s and JSON; after every
run the reports so far are merged into one file (--out).

    python3 tools/bench/gpu-kit/torch_steps.py --layers 2,4 --sizes 256,512,1024 --batches 1,4,16 \\
        --budget-s 20 --work /tmp/torch-runs --out $OUT/torch.json [-- more gpu_engine.py options]
"""

import argparse
import json
import os
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..")))

import gpu_engine  # noqa: E402


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", default="2,4")
    ap.add_argument("--sizes", default="256,512,1024")
    ap.add_argument("--batches", default="1,4,16")
    ap.add_argument("--budget-s", type=float, default=20.0, help="gpu_engine --time-budget-s of each run")
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    os.makedirs(args.work, exist_ok=True)
    merged = {"tool": "tools/bench/gpu-kit/torch_steps.py", "argv": argv, "runs": []}
    for layers in (int(x) for x in args.layers.split(",")):
        for size in (int(x) for x in args.sizes.split(",")):
            path = os.path.join(args.work, f"torch-L{layers}-{size}.json")
            run = {"layers": layers, "size": size}
            t0 = time.time()
            try:
                run["rc"] = gpu_engine.main(["--layers", str(layers), "--size", str(size), "--batches", args.batches,
                                             "--time-budget-s", str(args.budget_s), "--json", path, *extra])
            except Exception as e:  # noqa: BLE001  (one run's failure is recorded; the next runs)
                run["error"] = f"{type(e).__name__}: {e}"
                traceback.print_exc()
            run["seconds"] = round(time.time() - t0, 1)
            if os.path.exists(path):
                with open(path) as f:
                    run["report"] = json.load(f)
            merged["runs"].append(run)
            with open(args.out, "w") as f:
                json.dump(merged, f, indent=1)
                f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
