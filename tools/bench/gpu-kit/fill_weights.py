#!/usr/bin/env python3
"""Writes the external-data file of a weightless model directory (tools/bench/gpu-kit/export_graphs.py) with random
values, so that onnxruntime can open the graphs: timing only, the outputs are noise.

    python3 tools/bench/gpu-kit/fill_weights.py DIR [--std 0.02] [--seed 0] [--check]

Reads every DIR/*.onnx without its external data and checks that all external references name one file inside DIR,
that tensors sharing an offset agree on length and type, that each length is the declared dims times the element size,
and that no two distinct regions overlap. Then writes the file (its size: the end of the last region) with, per region,
normal(0, std) values of the declared type (float16 / float32 / bfloat16 / float64); a 1-D tensor (an RMSNorm
weight) gets 1 + normal(0, std). Chunks are slices of one pool of draws at random places (disk speed, not generator
speed). A non-float external tensor is refused (its values would be indices or shapes).
Needs only numpy and onnx (the lent GPU machines' image has both).
"""

import argparse
import os
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto

DTYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
          TensorProto.BFLOAT16: "bf16"}


class Refused(Exception):
    pass


def regions(directory):
    """-> (file name, [(offset, length, data_type, ndim, example tensor name)] sorted by offset)."""
    files = sorted(f for f in os.listdir(directory) if f.endswith(".onnx"))
    if not files:
        raise Refused(f"{directory}: no .onnx files")
    by_off, locations = {}, set()
    for f in files:
        m = onnx.load(os.path.join(directory, f), load_external_data=False)
        for t in m.graph.initializer:
            if t.data_location != TensorProto.EXTERNAL:
                continue
            e = {x.key: x.value for x in t.external_data}
            loc = e.get("location")
            if not loc or os.path.isabs(loc) or os.path.normpath(loc).startswith(".."):
                raise Refused(f"{f}: {t.name} has location {loc!r}, not a file inside the directory")
            locations.add(loc)
            if t.data_type not in DTYPES:
                raise Refused(f"{f}: {t.name} is external {TensorProto.DataType.Name(t.data_type)} data: only float "
                              "tensors can be filled with random values")
            if "length" not in e:
                raise Refused(f"{f}: {t.name} has no external length")
            off, length = int(e.get("offset", 0)), int(e["length"])
            item = {TensorProto.FLOAT16: 2, TensorProto.BFLOAT16: 2, TensorProto.DOUBLE: 8}.get(t.data_type, 4)
            size = int(np.prod(t.dims, dtype=np.int64)) * item
            if size != length:
                raise Refused(f"{f}: {t.name} {list(t.dims)} declares {length} bytes, its dims hold {size}")
            got = (length, t.data_type, len(t.dims))
            prev = by_off.setdefault(off, got + (f"{f}:{t.name}",))
            if prev[:3] != got:
                raise Refused(f"{f}: {t.name} shares offset {off} with {prev[3]} of another length/type/rank")
    if len(locations) > 1:
        raise Refused(f"external data in several files: {sorted(locations)}")
    if not locations:
        raise Refused(f"{directory}: no external data")
    out = sorted((off, *v) for off, v in by_off.items())
    for a, b in zip(out, out[1:]):
        if a[0] + a[1] > b[0]:
            raise Refused(f"{a[4]} [{a[0]}, {a[0] + a[1]}) overlaps {b[4]} at {b[0]}")
    return locations.pop(), out


def _bf16(x):
    return (x.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)


def fill(directory, std=0.02, seed=0, chunk_mb=64, log=print):
    """Writes the file; -> (path, bytes). The values come from a pool of 2·chunk normal draws per type, each chunk
    copied from a random place in it: generating gigabytes of draws would take longer than the measurement."""
    t0 = time.time()
    name, regs = regions(directory)
    path = os.path.join(directory, name)
    end = max(o + n for o, n, *_ in regs)
    rng = np.random.default_rng(seed)
    chunk = (chunk_mb << 20) // 2  # elements per write (2-byte types: chunk_mb MiB)
    base = rng.standard_normal(2 * chunk, dtype=np.float32) * np.float32(std)
    pools = {}

    def pool(dt, ndim):
        key = (dt, ndim == 1)
        if key not in pools:
            x = base + np.float32(1.0) if ndim == 1 else base
            np_dt = DTYPES[dt]
            pools[key] = _bf16(x) if np_dt == "bf16" else x.astype(np_dt)
        return pools[key]

    with open(path, "wb") as f:
        f.truncate(end)  # gaps (alignment) stay zero
        for off, length, dt, ndim, _ in regs:
            src = pool(dt, ndim)
            item = src.dtype.itemsize
            f.seek(off)
            left = length // item
            while left:
                n = min(left, chunk)
                at = int(rng.integers(0, src.size - n + 1))
                f.write(src[at:at + n].tobytes())
                left -= n
    log(f"{path}: {len(regs)} regions, {end / 2**30:.2f} GiB written in {time.time() - t0:.1f} s")
    return path, end


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir")
    ap.add_argument("--std", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-mb", type=int, default=64)
    ap.add_argument("--check", action="store_true", help="check the references and print the size; write nothing")
    args = ap.parse_args(argv)
    try:
        if args.check:
            name, regs = regions(args.dir)
            print(f"{name}: {len(regs)} regions, {max(o + n for o, n, *_ in regs)} bytes")
            return 0
        fill(args.dir, args.std, args.seed, args.chunk_mb, log=lambda m: print(m, flush=True))
    except Refused as e:
        print(f"refused: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
