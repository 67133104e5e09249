#!/usr/bin/env python3
"""The device run's summary: per image size and batch, the ONNX Runtime (steps-L<n>.json) and PyTorch (torch.json)
step times at 2 and 4 layers, fitted as a + b·layers and extrapolated to 32 layers (the real depth): ms per full step,
per partial step (+ the draw on the ORT side), the ML-Cache speed-up per image of a 64-step job (the schedule in the
steps JSON: libs/diffusion/src/cache-policy.ts) and ORT-WebGPU ÷ PyTorch per full step.

    python3 tools/bench/gpu-kit/fit.py --ort steps-L2.json steps-L4.json --torch torch.json --out summary.json
"""

import argparse
import json
import os
import sys

DEPTH = 32


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def fit(points, at=DEPTH):
    """points {layers: ms} with two depths -> (a, b, value at `at`), or None."""
    if len(points) < 2:
        return None
    (l1, y1), (l2, y2) = sorted(points.items())[:2]
    b = (y2 - y1) / (l2 - l1)
    a = y1 - b * l1
    out = {"a": round(a, 3), "b": round(b, 3), f"at{at}": round(a + b * at, 2)}
    if b <= 0:  # noise (or a warmup artefact) larger than the per-layer cost: no extrapolation
        out.update({f"at{at}": None, "note": "not increasing with depth"})
    return out


def ort_figures(reports):
    """-> {(size, B): {metric: {layers: ms}}}, the job schedule."""
    out, job = {}, None
    for r in reports:
        if not r:
            continue
        layers = r["architecture"]["nLayers"]
        job = job or r.get("job")
        for c in r.get("cases", []):
            for m in ("fullMs", "partialMs", "drawMs"):
                if isinstance(c.get(m), (int, float)):
                    out.setdefault((c["size"], c["B"]), {}).setdefault(m, {})[layers] = c[m]
    return out, job


def torch_figures(merged):
    out = {}
    for run in (merged or {}).get("runs", []):
        rep = run.get("report") or {}
        for c in rep.get("cases", []):
            if c.get("status") != "ok":
                continue
            key = (run["size"], c["B"])
            if c["case"] == "full":
                out.setdefault(key, {}).setdefault("fullMs", {})[run["layers"]] = c["ms"]
            elif c["case"].startswith("segment") and c.get("partial_step_ms") is not None:
                out.setdefault(key, {}).setdefault("partialMs", {})[run["layers"]] = c["partial_step_ms"]
        out.setdefault("_mode", rep.get("mode"))
        out.setdefault("_device", rep.get("device_name"))
    return out


def job_speedup(full, partial, job):
    if full is None or partial is None or not job:
        return None
    cached = job["full"] * full + job["partial"] * partial
    return round(job["steps"] * full / cached, 3) if cached > 0 else None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ort", nargs="*", default=[])
    ap.add_argument("--torch", default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    ort, job = ort_figures([load(p) for p in args.ort if os.path.exists(p)])
    th = torch_figures(load(args.torch) if args.torch else None)
    job = job or {"steps": 64, "full": 28, "partial": 36}
    rows = []
    for key in sorted({k for k in ort} | {k for k in th if isinstance(k, tuple)}):
        size, B = key
        o, t = ort.get(key, {}), th.get(key, {})
        row = {"size": size, "B": B, "ort": {}, "torch": {}}
        for side, src in (("ort", o), ("torch", t)):
            for m, pts in src.items():
                if m == "drawMs":  # sample_head_device has no layers: the mean, not a fit
                    mean = round(sum(pts.values()) / len(pts), 2)
                    row[side][m] = {"byLayers": pts, "fit": {"a": mean, "b": 0, f"at{DEPTH}": mean}}
                else:
                    row[side][m] = {"byLayers": pts, "fit": fit(pts)}
        def at(side, m, layers=None):
            v = row[side].get(m)
            if not v:
                return None
            if layers is None:
                return v["fit"].get(f"at{DEPTH}") if v["fit"] else None
            return v["byLayers"].get(layers)
        for layers in (2, 4, None):
            tag = f"L{layers}" if layers else f"L{DEPTH}fit"
            of, op, od = at("ort", "fullMs", layers), at("ort", "partialMs", layers), at("ort", "drawMs", layers)
            tf, tp = at("torch", "fullMs", layers), at("torch", "partialMs", layers)
            row[tag] = {
                "ortFullMs": of, "ortPartialPlusDrawMs": None if op is None or od is None else round(op + od, 2),
                "ortCacheSpeedup": job_speedup(of, None if op is None or od is None else op + od, job),
                "torchFullMs": tf, "torchPartialMs": tp, "torchCacheSpeedup": job_speedup(tf, tp, job),
                "ortOverTorchFull": round(of / tf, 3) if of and tf else None,
            }
        rows.append(row)
    summary = {"job": job, "depth": DEPTH, "torchMode": th.get("_mode"), "torchDevice": th.get("_device"), "rows": rows}
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    fmt = lambda v, w=8: (f"{v:{w}.1f}" if isinstance(v, (int, float)) else f"{'-':>{w}}")  # noqa: E731
    print(f"job: {job['steps']} steps = {job['full']} full + {job['partial']} partial; torch mode {th.get('_mode')}")
    print(f"{'size':>5} {'B':>3} {'depth':>7}  {'ort full':>8} {'ort p+d':>8} {'ort x':>6}  {'pt full':>8} "
          f"{'pt part':>8} {'pt x':>6}  {'ort/pt':>6}")
    for r in rows:
        for tag in ("L2", "L4", f"L{DEPTH}fit"):
            v = r[tag]
            print(f"{r['size']:>5} {r['B']:>3} {tag:>7}  {fmt(v['ortFullMs'])} {fmt(v['ortPartialPlusDrawMs'])} "
                  f"{fmt(v['ortCacheSpeedup'], 6)}  {fmt(v['torchFullMs'])} {fmt(v['torchPartialMs'])} "
                  f"{fmt(v['torchCacheSpeedup'], 6)}  {fmt(v['ortOverTorchFull'], 6)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
