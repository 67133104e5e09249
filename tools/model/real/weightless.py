"""Real-width graphs without their weights (the GPU kit, tools/bench/gpu-kit): exported by this project's exporter
(exporter.trace_graphs + DirWriter) from a randomly initialised transformer at the real width and depth but a small
vocabulary, then widened to the real vocabulary by rewriting metadata only, and stripped of `weights.bin`.

Why a small vocabulary: at d 4096 the embedding and head are 2 x 134,548 x 4096 parameters (4.4 GB in float32), traced
once per graph; nothing in a graph depends on the vocabulary except those two initializers' first dimension (every
reshape takes its shape from d, heads and head_dim; the head's slice takes `vocab_range` as an input; K is a dynamic
axis). `widen_vocab` therefore rewrites exactly: the dims of the [V0, d] initializers, any graph input/output/value_info
dimension equal to V0, and the external-data layout (offsets, lengths) of one shared file, which is then not written.
It refuses a graph where V0 (or the example's code offset / K) appears as a constant, since such a value might be
derived from the vocabulary.  test_real.WeightlessTest proves the rewrite against a direct export at the wider
vocabulary: the same protos, and the same outputs once both files hold the same tensors.
"""

import json
import os

import onnx
from onnx import TensorProto, numpy_helper

from conformance import sha256

ALIGN = 64  # onnx_passes.SharedStore's alignment


def _ext(t):
    return {e.key: e.value for e in t.external_data}


def _set_ext(t, **kv):
    d = dict(_ext(t), **{k: str(v) for k, v in kv.items()})
    del t.external_data[:]
    for k in ("location", "offset", "length"):
        if k in d:
            e = t.external_data.add()
            e.key, e.value = k, d[k]


def graph_files(directory):
    return sorted(f for f in os.listdir(directory) if f.endswith(".onnx"))


def _constant_values(model):
    """Every small integer constant of a graph (initializers kept inline and Constant nodes), flattened."""
    vals = []
    for t in model.graph.initializer:
        if t.data_location != TensorProto.EXTERNAL and t.data_type in (TensorProto.INT64, TensorProto.INT32):
            vals.extend(numpy_helper.to_array(t).reshape(-1).tolist())
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value" and a.t.data_type in (TensorProto.INT64, TensorProto.INT32):
                    vals.extend(numpy_helper.to_array(a.t).reshape(-1).tolist())
                elif a.name in ("value_int", "value_ints"):
                    vals.extend([a.i] if a.name == "value_int" else list(a.ints))
    return vals


def widen_vocab(directory, v_small, v_real, d_model, forbidden=(), store="weights.bin"):
    """Rewrites every graph of `directory` from vocabulary `v_small` to `v_real` (see the module docstring) and lays
    the external data out again for the real sizes; `store` is deleted (its contents were random).  `forbidden`: more
    values (the example's code offset, K) that no integer constant may hold.  -> (bytes of the new store, number of
    external tensors, the widened initializers' names)."""
    models = {f: onnx.load(os.path.join(directory, f), load_external_data=False) for f in graph_files(directory)}
    regions = {}  # old offset -> (old length, widened)
    widened = set()
    for f, m in models.items():
        bad = set(_constant_values(m)) & {v_small, *forbidden}
        if bad:
            raise ValueError(f"{f}: an integer constant holds {sorted(bad)}: the graph may depend on the vocabulary")
        for t in m.graph.initializer:
            if t.data_location != TensorProto.EXTERNAL:
                if list(t.dims[:1]) == [v_small]:
                    raise ValueError(f"{f}: {t.name} [{list(t.dims)}] is inline")
                continue
            e = _ext(t)
            if e.get("location") != store:
                raise ValueError(f"{f}: {t.name} is stored in {e.get('location')}, not {store}")
            wide = list(t.dims) == [v_small, d_model]
            if not wide and v_small in t.dims:
                raise ValueError(f"{f}: {t.name} {list(t.dims)} has the vocabulary in another place")
            key = int(e.get("offset", 0))
            got = (int(e["length"]), wide)
            if regions.setdefault(key, got) != got:
                raise ValueError(f"{f}: {t.name} shares offset {key} with a tensor of another size")
            if wide:
                widened.add(t.name)
    new_off, end = {}, 0
    for off in sorted(regions):
        length, wide = regions[off]
        end += -end % ALIGN
        new_off[off] = (end, length // v_small * v_real if wide else length)
        end += new_off[off][1]
    n_ext = 0
    for f, m in models.items():
        for t in m.graph.initializer:
            if t.data_location != TensorProto.EXTERNAL:
                continue
            off, length = new_off[int(_ext(t).get("offset", 0))]
            if list(t.dims) == [v_small, d_model]:
                t.dims[0] = v_real
            _set_ext(t, offset=off, length=length)
            n_ext += 1
        for vi in list(m.graph.input) + list(m.graph.output) + list(m.graph.value_info):
            for dim in vi.type.tensor_type.shape.dim:
                if dim.HasField("dim_value") and dim.dim_value == v_small:
                    dim.dim_value = v_real
        with open(os.path.join(directory, f), "wb") as fh:
            fh.write(m.SerializeToString())
        onnx.checker.check_model(os.path.join(directory, f))  # the graph alone (the checker reads no external data)
    p = os.path.join(directory, store)
    if os.path.exists(p):
        os.remove(p)
    return end, n_ext, sorted(widened)


def external_layout(directory, store="weights.bin"):
    """-> {(offset, length, data_type)} of every external tensor of the directory's graphs (read without the data)."""
    out = set()
    for f in graph_files(directory):
        for t in onnx.load(os.path.join(directory, f), load_external_data=False).graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                e = _ext(t)
                out.add((int(e.get("offset", 0)), int(e["length"]), t.data_type, e.get("location"), t.name))
    return out


def rewrite_manifest(directory, v_real, tokens, store_bytes, store="weights.bin", note=""):
    """The manifest after `widen_vocab`: the real vocabulary and token ids, the graphs' new checksums, and the store's
    size without a checksum (`weightless`: the device fills it with random values, tools/bench/gpu-kit/fill_weights.py).
    """
    p = os.path.join(directory, "manifest.json")
    with open(p) as f:
        man = json.load(f)
    man["architecture"]["vocabSize"] = v_real
    man["tokens"] = dict(tokens)
    files = {}
    for name in man["files"]:
        if name == store:
            continue
        path = os.path.join(directory, name)
        files[name] = {"sha256": sha256(path), "bytes": os.path.getsize(path)}
    man["files"] = files
    man["weightless"] = {"file": store, "bytes": store_bytes, "note": note}
    with open(p, "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")
    return man


def copy_tensors(src_dir, dst_dir, store="weights.bin"):
    """Writes dst_dir/store with, for each of dst's external tensors, the bytes of the tensor of the same name in
    src_dir (proofs only: the same weights under two layouts)."""
    src = {}
    for f in graph_files(src_dir):
        for t in onnx.load(os.path.join(src_dir, f), load_external_data=False).graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                e = _ext(t)
                src[t.name] = (int(e.get("offset", 0)), int(e["length"]))
    layout = external_layout(dst_dir, store)
    size = max(o + n for o, n, *_ in layout)
    with open(os.path.join(src_dir, store), "rb") as fi, open(os.path.join(dst_dir, store), "wb") as fo:
        fo.truncate(size)
        for off, length, _, _, name in layout:
            so, sl = src[name]
            if sl != length:
                raise ValueError(f"{name}: {sl} bytes in {src_dir}, {length} in {dst_dir}")
            fi.seek(so)
            fo.seek(off)
            fo.write(fi.read(sl))
    return size


def casts_of_vocab_matrices(model, v_real, d_model):
    """The [V, d] initializers must be gathered/sliced before any Cast to float32: a Cast of the whole matrix would
    materialise V·d floats (2.2 GB at the real vocabulary, beyond a WebGPU adapter's largest storage binding).
    -> the offending (tensor, consumer op) pairs."""
    big = {t.name for t in model.graph.initializer if list(t.dims) == [v_real, d_model]}
    return [(i, n.op_type) for n in model.graph.node for i in n.input if i in big and n.op_type == "Cast"]
