"""ONNX passes of the real-model export.

`SharedStore` — external data for every graph of a model directory in **one** file, content-addressed: a tensor that
several graphs hold (the embedding, the head, every layer: `denoise`, `denoise_partial`, `forward_logits` and
`denoise_segment` all carry the whole transformer) is stored once.  The graphs are exported without constant folding,
so their initializers are the checkpoint's parameters byte for byte; onnxruntime folds the transposes when it loads a
session.  Every initializer of at least `min_bytes` goes to the store (forced even for the twin, so the path the real
model needs — protobuf's 2 GB limit — is the one tested).

`to_fp16` — the fp16 variant, by rewriting an fp32 graph: every 2-D float32 weight initializer is stored as float16; a
MatMul it reaches (directly or through Transpose / Gather of its rows) runs in float16 (the activation is cast to
float16 before, the product back to float32 after); where it reaches anything else (the embedding's Gather feeds the
residual stream) it is cast back to float32 right there.  Norms, softmax, RoPE, the residual stream,
the sampling rule and the VQ stay float32/float64.  bf16 checkpoint values are exact in float16 except below 6e-8
(flushed towards 0) and above 65504 (none in a trained checkpoint; the pass refuses them).
"""

import hashlib
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PASS_THROUGH = {"Transpose", "Gather", "Reshape", "Unsqueeze", "Squeeze", "Slice", "Identity"}


class SharedStore:
    def __init__(self, directory, name="weights.bin", min_bytes=1024, align=64):
        self.dir = directory
        self.name = name
        self.path = os.path.join(directory, name)
        self.min_bytes = min_bytes
        self.align = align
        self.index = {}
        self.size = 0
        self.tensors = 0
        self.bytes_in = 0
        open(self.path, "wb").close()

    def _put(self, data):
        key = hashlib.sha256(data).hexdigest()
        if key not in self.index:
            pad = -self.size % self.align
            with open(self.path, "ab") as f:
                f.write(b"\0" * pad)
                f.write(data)
            self.index[key] = self.size + pad
            self.size += pad + len(data)
        return self.index[key]

    def externalize(self, model):
        """Moves the model's large initializers into the store (in place)."""
        for t in model.graph.initializer:
            if t.data_location == TensorProto.EXTERNAL:
                raise ValueError(f"{t.name} is already external")
            data = numpy_helper.to_array(t).tobytes() if not t.HasField("raw_data") else t.raw_data
            if len(data) < self.min_bytes:
                continue
            off = self._put(data)
            self.tensors += 1
            self.bytes_in += len(data)
            for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
                t.ClearField(f)
            t.data_location = TensorProto.EXTERNAL
            del t.external_data[:]
            for k, v in (("location", self.name), ("offset", str(off)), ("length", str(len(data)))):
                e = t.external_data.add()
                e.key = k
                e.value = v
        return model


def save(model, path):
    """Writes the graph only (its external data already lives in the store) and checks it by path."""
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    onnx.checker.check_model(path)


def external_files(path):
    """The external data files an ONNX file refers to."""
    m = onnx.load(path, load_external_data=False)
    out = set()
    for t in m.graph.initializer:
        if t.data_location == TensorProto.EXTERNAL:
            out.update(e.value for e in t.external_data if e.key == "location")
    return out


def to_fp16(model, min_elems=1024):
    """The fp16 variant of an fp32 graph (see the module docstring).  -> (model, number of weights converted)."""
    g = model.graph
    producer_out = {o for node in g.node for o in node.output}

    half = set()
    converted = 0
    new_inits = []
    for t in g.initializer:
        a = numpy_helper.to_array(t) if t.data_type == TensorProto.FLOAT else None
        if a is not None and a.ndim == 2 and a.size >= min_elems and t.name not in producer_out:
            big = np.abs(a).max(initial=0.0)
            if big > 65504:
                raise ValueError(f"{t.name}: |w| up to {big} does not fit float16")
            h = numpy_helper.from_array(a.astype(np.float16), t.name)
            new_inits.append(h)
            half.add(t.name)
            converted += 1
        else:
            new_inits.append(t)
    del g.initializer[:]
    g.initializer.extend(new_inits)

    # propagate float16 through pass-through ops fed by a float16 tensor as their data input
    to16_cache, to32_cache = {}, {}
    out_nodes = []

    def cast(src, to, cache, suffix):
        if src not in cache:
            dst = f"{src}__{suffix}"
            out_nodes.append(helper.make_node("Cast", [src], [dst], to=to, name=f"cast_{suffix}_{len(out_nodes)}"))
            cache[src] = dst
        return cache[src]

    for node in list(g.node):
        ins = list(node.input)
        if node.op_type in PASS_THROUGH and ins and ins[0] in half:
            for o in node.output:
                half.add(o)
            out_nodes.append(node)
            continue
        if node.op_type == "MatMul" and (ins[0] in half or ins[1] in half):
            for i in (0, 1):
                if ins[i] not in half:
                    ins[i] = cast(ins[i], TensorProto.FLOAT16, to16_cache, "f16")
            out = node.output[0]
            mm = helper.make_node("MatMul", ins, [out + "__f16mm"], name=(node.name or "matmul") + "_f16")
            out_nodes.append(mm)
            out_nodes.append(helper.make_node("Cast", [out + "__f16mm"], [out], to=TensorProto.FLOAT,
                                              name=(node.name or "matmul") + "_to_f32"))
            continue
        changed = False
        if node.op_type == "Shape":  # reads only the shape: any dtype
            out_nodes.append(node)
            continue
        for i, name in enumerate(ins):
            if name in half:
                ins[i] = cast(name, TensorProto.FLOAT, to32_cache, "f32")
                changed = True
        if changed:
            del node.input[:]
            node.input.extend(ins)
        out_nodes.append(node)
    for o in g.output:
        if o.name in half:
            raise ValueError(f"graph output {o.name} would be float16")
    del g.node[:]
    g.node.extend(out_nodes)
    del g.value_info[:]
    return model, converted
