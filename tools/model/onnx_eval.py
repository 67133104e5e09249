"""A small NumPy interpreter for the ONNX graphs of the tiny model (opset 17).

There is no onnxruntime for Python on the project's machines, so conformance.py runs the graphs with this
interpreter to check their numerics (and that every axis is really dynamic).  It implements only the operators the
exporter emits; an unknown operator raises.  float32 stays float32 throughout.
"""

import numpy as np
import onnx
from onnx import numpy_helper

_DT = {
    1: np.float32, 2: np.uint8, 3: np.int8, 5: np.int16, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16,
    11: np.float64, 12: np.uint32, 13: np.uint64,
}


def _attrs(node):
    out = {}
    for a in node.attribute:
        out[a.name] = onnx.helper.get_attribute_value(a)
    return out


def _axis(a, nd):
    return a + nd if a < 0 else a


def _int_div(a, b):
    q = np.abs(a) // np.abs(b)
    return (q * np.sign(a) * np.sign(b)).astype(a.dtype)


def _reduce(fn, x, axes, keepdims):
    if axes is None or len(axes) == 0:
        axes = tuple(range(x.ndim))
    axes = tuple(_axis(int(a), x.ndim) for a in axes)
    return fn(x, axis=axes, keepdims=bool(keepdims))


def _slice(x, starts, ends, axes=None, steps=None):
    if axes is None:
        axes = range(len(starts))
    if steps is None:
        steps = [1] * len(starts)
    sl = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        a = _axis(int(a), x.ndim)
        dim = x.shape[a]
        s, e, st = int(s), int(e), int(st)
        if s < 0:
            s += dim
        if e < 0:
            e += dim
        if st > 0:
            s = min(max(s, 0), dim)
            e = min(max(e, 0), dim)
        else:
            s = min(max(s, -1), dim - 1)
            e = min(max(e, -1), dim - 1)
            if e == -1:
                e = None
        sl[a] = slice(s, e, st)
    return x[tuple(sl)]


def run_node(node, inp):
    op = node.op_type
    at = _attrs(node)
    x = inp[0] if inp else None
    if op == "Identity":
        return [x]
    if op == "Constant":
        if "value" in at:
            return [numpy_helper.to_array(at["value"])]
        if "value_float" in at:
            return [np.array(at["value_float"], dtype=np.float32)]
        if "value_int" in at:
            return [np.array(at["value_int"], dtype=np.int64)]
        if "value_ints" in at:
            return [np.array(at["value_ints"], dtype=np.int64)]
        if "value_floats" in at:
            return [np.array(at["value_floats"], dtype=np.float32)]
        raise NotImplementedError("Constant " + str(list(at)))
    if op in ("Add", "Sub", "Mul", "Div", "Pow"):
        a, b = inp
        if op == "Add":
            r = a + b
        elif op == "Sub":
            r = a - b
        elif op == "Mul":
            r = a * b
        elif op == "Div":
            r = _int_div(a, b) if np.issubdtype(a.dtype, np.integer) else a / b
        else:
            r = np.power(a, b)
        return [np.asarray(r).astype(a.dtype, copy=False)]
    if op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        a, b = inp
        f = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
             "GreaterOrEqual": np.greater_equal}[op]
        return [f(a, b)]
    if op == "Not":
        return [np.logical_not(x)]
    if op in ("And", "Or", "Xor"):
        f = {"And": np.logical_and, "Or": np.logical_or, "Xor": np.logical_xor}[op]
        return [f(inp[0], inp[1])]
    if op == "TopK":
        k = int(np.asarray(inp[1]).reshape(-1)[0])
        ax = _axis(at.get("axis", -1), x.ndim)
        if not at.get("sorted", 1):
            raise NotImplementedError("TopK sorted=0")
        # ONNX: sorted by value, the lower index first among equal values
        order = np.argsort(-x if at.get("largest", 1) else x, axis=ax, kind="stable")
        idx = np.take(order, np.arange(k), axis=ax)
        return [np.take_along_axis(x, idx, axis=ax), idx.astype(np.int64)]
    if op == "Where":
        c, a, b = inp
        return [np.where(c, a, b).astype(a.dtype, copy=False)]
    if op in ("Min", "Max"):
        f = np.minimum if op == "Min" else np.maximum
        r = inp[0]
        for y in inp[1:]:
            r = f(r, y)
        return [r]
    if op == "Neg":
        return [-x]
    if op in ("Exp", "Sqrt", "Sin", "Cos", "Abs", "Log", "Reciprocal", "Tanh", "Floor", "Ceil"):
        f = {"Exp": np.exp, "Sqrt": np.sqrt, "Sin": np.sin, "Cos": np.cos, "Abs": np.abs, "Log": np.log,
             "Reciprocal": np.reciprocal, "Tanh": np.tanh, "Floor": np.floor, "Ceil": np.ceil}[op]
        with np.errstate(over="ignore", under="ignore", divide="ignore", invalid="ignore"):
            return [f(x).astype(x.dtype, copy=False)]
    if op == "Sigmoid":
        with np.errstate(over="ignore"):
            return [(1.0 / (1.0 + np.exp(-x))).astype(x.dtype)]
    if op == "Cast":
        return [x.astype(_DT[at["to"]])]
    if op == "Clip":
        lo = inp[1] if len(inp) > 1 and inp[1] is not None else None
        hi = inp[2] if len(inp) > 2 and inp[2] is not None else None
        r = x
        if lo is not None:
            r = np.maximum(r, lo)
        if hi is not None:
            r = np.minimum(r, hi)
        return [r.astype(x.dtype, copy=False)]
    if op == "Concat":
        return [np.concatenate(inp, axis=at["axis"])]
    if op == "ConstantOfShape":
        v = numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in x), v.reshape(-1)[0], dtype=v.dtype)]
    if op == "CumSum":
        ax = _axis(int(np.asarray(inp[1]).reshape(-1)[0]), x.ndim)
        if at.get("exclusive", 0) or at.get("reverse", 0):
            raise NotImplementedError("CumSum exclusive/reverse")
        return [np.cumsum(x, axis=ax, dtype=x.dtype)]
    if op == "Expand":
        shape = np.broadcast_shapes(x.shape, tuple(int(d) for d in inp[1]))
        return [np.array(np.broadcast_to(x, shape))]
    if op == "Gather":
        ax = _axis(at.get("axis", 0), x.ndim)
        idx = np.asarray(inp[1]).astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[ax], idx)
        return [np.take(x, idx, axis=ax)]
    if op == "GatherElements":
        ax = _axis(at.get("axis", 0), x.ndim)
        idx = inp[1].astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[ax], idx)
        return [np.take_along_axis(x, idx, axis=ax)]
    if op == "ScatterElements":
        if at.get("reduction", "none") != "none":
            raise NotImplementedError("ScatterElements reduction")
        ax = _axis(at.get("axis", 0), x.ndim)
        idx = inp[1].astype(np.int64)
        idx = np.where(idx < 0, idx + x.shape[ax], idx)
        r = x.copy()
        np.put_along_axis(r, idx, inp[2], axis=ax)
        return [r]
    if op == "ScatterND":
        if at.get("reduction", "none") != "none":
            raise NotImplementedError("ScatterND reduction")
        data, idx, upd = inp
        out = np.array(data, copy=True)
        k = idx.shape[-1]
        flat_idx = idx.reshape(-1, k).astype(np.int64)
        # a repeated index keeps the last update (NumPy's and onnxruntime's CPU kernel's order)
        out[tuple(flat_idx.T)] = upd.reshape((flat_idx.shape[0],) + data.shape[k:])
        return [out]
    if op == "MatMul":
        if inp[0].dtype == np.float16 and inp[1].dtype == np.float16:
            # float16 products accumulated in float32 and rounded once (what onnxruntime's kernels do; NumPy's own
            # float16 matmul is unusably slow)
            return [np.matmul(inp[0].astype(np.float32), inp[1].astype(np.float32)).astype(np.float16)]
        return [np.matmul(inp[0], inp[1])]
    if op == "Range":
        s, l, d = (np.asarray(v).reshape(()) for v in inp)
        return [np.arange(s, l, d, dtype=s.dtype)]
    if op in ("ReduceMax", "ReduceMin", "ReduceMean", "ReduceSum"):
        keep = at.get("keepdims", 1)
        if op == "ReduceSum":
            axes = inp[1] if len(inp) > 1 and inp[1] is not None else None
            if axes is None and at.get("noop_with_empty_axes", 0):
                return [x]
        else:
            axes = at.get("axes")
        f = {"ReduceMax": np.max, "ReduceMin": np.min, "ReduceMean": np.mean, "ReduceSum": np.sum}[op]
        r = _reduce(f, x, axes, keep)
        return [np.asarray(r).astype(x.dtype, copy=False)]
    if op in ("ArgMax", "ArgMin"):
        if at.get("select_last_index", 0):
            raise NotImplementedError("select_last_index")
        ax = _axis(at.get("axis", 0), x.ndim)
        f = np.argmax if op == "ArgMax" else np.argmin
        r = f(x, axis=ax)
        if at.get("keepdims", 1):
            r = np.expand_dims(r, ax)
        return [r.astype(np.int64)]
    if op == "Reshape":
        shape = [int(d) for d in inp[1]]
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Shape":
        s = np.array(x.shape, dtype=np.int64)
        start = at.get("start", 0)
        end = at.get("end", None)
        return [s[start:end] if end is not None else s[start:]]
    if op == "Slice":
        starts, ends = inp[1], inp[2]
        axes = inp[3] if len(inp) > 3 and inp[3] is not None else None
        steps = inp[4] if len(inp) > 4 and inp[4] is not None else None
        return [_slice(x, starts, ends, axes, steps)]
    if op == "Softmax":
        ax = at.get("axis", -1)
        m = np.max(x, axis=ax, keepdims=True)
        e = np.exp(x - m)
        return [(e / np.sum(e, axis=ax, keepdims=True)).astype(x.dtype, copy=False)]
    if op == "MultiHeadAttention":  # com.microsoft, as tools/model/fused_attention.py exports it
        q, k, v, bias = inp[0], inp[1], inp[2], inp[5]
        if k.ndim != 4 or any(t is not None for t in inp[3:5]) or len(inp) > 6:
            raise NotImplementedError("MultiHeadAttention: only BSD query, BNSH key/value and attention_bias")
        R, Q, d = q.shape
        H = at["num_heads"]
        qh = q.reshape(R, Q, H, d // H).transpose(0, 2, 1, 3)
        sc = np.matmul(qh, k.transpose(0, 1, 3, 2)) * np.float32(at.get("scale", 1.0 / np.sqrt(d // H))) + bias
        sc = np.exp(sc - sc.max(-1, keepdims=True))
        att = sc / sc.sum(-1, keepdims=True)
        return [np.matmul(att, v).transpose(0, 2, 1, 3).reshape(R, Q, d).astype(np.float32, copy=False)]
    if op == "Squeeze":
        if len(inp) > 1 and inp[1] is not None:
            return [np.squeeze(x, axis=tuple(_axis(int(a), x.ndim) for a in inp[1]))]
        return [np.squeeze(x)]
    if op == "Unsqueeze":
        axes = sorted(_axis(int(a), x.ndim + len(inp[1])) for a in inp[1])
        r = x
        for a in axes:
            r = np.expand_dims(r, a)
        return [r]
    if op == "Transpose":
        perm = at.get("perm")
        return [np.transpose(x, perm)]
    if op == "Conv":
        return [_conv(x, inp[1], inp[2] if len(inp) > 2 else None, at)]
    if op == "Pad":
        if at.get("mode", b"constant") not in (b"constant", "constant"):
            raise NotImplementedError("Pad mode")
        pads = [int(p) for p in inp[1]]
        if len(inp) > 3 and inp[3] is not None:
            raise NotImplementedError("Pad axes")
        value = np.asarray(inp[2]).reshape(()) if len(inp) > 2 and inp[2] is not None else 0
        n = x.ndim
        return [np.pad(x, [(pads[i], pads[i + n]) for i in range(n)], constant_values=value).astype(x.dtype)]
    if op == "InstanceNormalization":
        eps = at.get("epsilon", 1e-5)
        axes = tuple(range(2, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        shape = (1, -1) + (1,) * (x.ndim - 2)
        y = (x - mean) / np.sqrt(var + np.float32(eps)) * inp[1].reshape(shape) + inp[2].reshape(shape)
        return [y.astype(x.dtype)]
    if op == "Resize":
        mode = at.get("mode", b"nearest")
        if mode not in (b"nearest", "nearest"):
            raise NotImplementedError(f"Resize mode {mode}")
        scales = inp[2] if len(inp) > 2 and inp[2] is not None and np.asarray(inp[2]).size else None
        if scales is None or any(float(s) != int(s) for s in scales):
            raise NotImplementedError("Resize: only integer scales")
        r = x
        for ax, s in enumerate(scales):
            if int(s) != 1:
                r = np.repeat(r, int(s), axis=ax)
        return [r]
    raise NotImplementedError(f"operator {op} is not implemented in onnx_eval")


def _conv(x, w, b, at):
    """2-D convolution (group 1, dilation 1) by im2col + matmul, float32."""
    if at.get("group", 1) != 1 or any(d != 1 for d in at.get("dilations", [1, 1])) or x.ndim != 4:
        raise NotImplementedError("Conv: only 2-D, group 1, dilation 1")
    if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("Conv auto_pad")
    kh, kw = w.shape[2], w.shape[3]
    p = at.get("pads", [0, 0, 0, 0])
    sh, sw = at.get("strides", [1, 1])
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])])
    B, C, H, W = xp.shape
    oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
    cols = np.empty((B, C, kh, kw, oh, ow), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i:i + sh * oh:sh, j:j + sw * ow:sw]
    y = np.matmul(w.reshape(w.shape[0], -1), cols.reshape(B, C * kh * kw, oh * ow)).reshape(B, -1, oh, ow)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y.astype(x.dtype)


class Graph:
    def __init__(self, path_or_model):
        self.model = onnx.load(path_or_model) if isinstance(path_or_model, str) else path_or_model
        g = self.model.graph
        self.inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.outputs = [o.name for o in g.output]

    def run(self, feeds, outputs=None):
        env = dict(self.inits)
        for k in self.inputs:
            if k not in feeds:
                raise KeyError(f"missing input {k}")
            env[k] = np.asarray(feeds[k])
        self._run_nodes(self.model.graph.node, env)
        names = outputs or self.outputs
        return {n: env[n] for n in names}

    def _run_nodes(self, nodes, env):
        for node in nodes:
            args = [env[n] if n else None for n in node.input]
            if node.op_type == "If":
                # the taken branch sees the outer names (torch writes one where it cannot prove a squeezed dim is 1)
                branch = _attrs(node)["then_branch" if bool(np.asarray(args[0]).reshape(())) else "else_branch"]
                inner = dict(env)
                for t in branch.initializer:
                    inner[t.name] = numpy_helper.to_array(t)
                self._run_nodes(branch.node, inner)
                res = [inner[o.name] for o in branch.output]
            else:
                res = run_node(node, args)
            for name, val in zip(node.output, res):
                if name:
                    env[name] = np.asarray(val)
