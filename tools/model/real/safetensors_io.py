"""A small reader and writer of the safetensors format (Debian has no `safetensors` package).

Format: an 8-byte little-endian unsigned header length n, n bytes of JSON header
  {name: {"dtype": "BF16"|"F16"|"F32"|..., "shape": [...], "data_offsets": [begin, end]}, "__metadata__": {...}}
(offsets relative to the end of the header), then the tensor bytes, little-endian, row-major.

The reader memory-maps the file and converts one tensor at a time to float32 (BF16 exactly, by widening the bits), so
a 16 GB checkpoint is never held twice.  A sharded checkpoint is a `*.safetensors.index.json` with a `weight_map`
{tensor name: shard file}.
"""

import json
import os
import struct

import numpy as np

_NP = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "I16": np.int16,
       "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class SafetensorsError(ValueError):
    pass


def read_header(path):
    """-> (header without __metadata__, metadata dict, byte offset of the data)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise SafetensorsError(f"{path}: shorter than the 8-byte header length")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 * 1024 * 1024:
            raise SafetensorsError(f"{path}: header length {n} is implausible")
        try:
            header = json.loads(f.read(n))
        except ValueError as e:
            raise SafetensorsError(f"{path}: header is not JSON ({e})") from e
    meta = header.pop("__metadata__", {}) or {}
    size = os.path.getsize(path) - 8 - n
    for name, t in header.items():
        if t.get("dtype") not in _SIZE:
            raise SafetensorsError(f"{path}: {name} has unsupported dtype {t.get('dtype')}")
        b, e = t["data_offsets"]
        want = int(np.prod(t["shape"], dtype=np.int64)) * _SIZE[t["dtype"]]
        if not (0 <= b <= e <= size) or e - b != want:
            raise SafetensorsError(f"{path}: {name} offsets {b}..{e} do not hold {t['shape']} {t['dtype']}")
    return header, meta, 8 + n


def bf16_to_f32(u16):
    return (np.asarray(u16, np.uint16).astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16(x):
    """Round to nearest even (as torch does); NaN stays NaN."""
    b = np.ascontiguousarray(x, np.float32).view(np.uint32)
    rounded = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return np.where(np.isnan(x), np.uint16(0x7FC0), rounded).astype(np.uint16)


class SafetensorsFile:
    def __init__(self, path):
        self.path = path
        self.header, self.metadata, self.start = read_header(path)
        self._map = None

    def keys(self):
        return list(self.header)

    def info(self, name):
        t = self.header[name]
        return t["dtype"], tuple(t["shape"])

    def raw(self, name):
        """The stored values (BF16 as uint16), memory-mapped."""
        if self._map is None:
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        t = self.header[name]
        b, e = t["data_offsets"]
        buf = self._map[self.start + b:self.start + e]
        dt = np.uint16 if t["dtype"] == "BF16" else _NP[t["dtype"]]
        return buf.view(dt).reshape(t["shape"])

    def get(self, name, dtype=np.float32):
        t = self.header[name]
        a = self.raw(name)
        if t["dtype"] == "BF16":
            a = bf16_to_f32(a)
        return np.array(a, dtype=dtype)


class Checkpoint:
    """The tensors of a checkpoint directory: one `*.safetensors` file, or the shards named by an index file."""

    def __init__(self, directory, stem="model"):
        self.dir = directory
        index = os.path.join(directory, f"{stem}.safetensors.index.json")
        single = os.path.join(directory, f"{stem}.safetensors")
        self.files = {}
        self.where = {}
        if os.path.exists(index):
            with open(index) as f:
                wm = json.load(f).get("weight_map")
            if not isinstance(wm, dict) or not wm:
                raise SafetensorsError(f"{index}: no weight_map")
            for name, shard in wm.items():
                if shard not in self.files:
                    p = os.path.join(directory, shard)
                    if not os.path.exists(p):
                        raise SafetensorsError(f"{index}: shard {shard} is missing")
                    self.files[shard] = SafetensorsFile(p)
                if name not in self.files[shard].header:
                    raise SafetensorsError(f"{index}: {name} is not in {shard}")
                self.where[name] = shard
        elif os.path.exists(single):
            self.files[os.path.basename(single)] = SafetensorsFile(single)
            for name in self.files[os.path.basename(single)].keys():
                self.where[name] = os.path.basename(single)
        else:
            raise SafetensorsError(f"{directory}: neither {stem}.safetensors nor {stem}.safetensors.index.json")

    def names(self):
        return sorted(self.where)

    def info(self, name):
        return self.files[self.where[name]].info(name)

    def get(self, name, dtype=np.float32):
        if name not in self.where:
            raise KeyError(f"{self.dir}: no tensor {name}")
        return self.files[self.where[name]].get(name, dtype)

    def dtypes(self):
        return sorted({self.info(n)[0] for n in self.where})


def write_file(path, tensors, dtype="BF16", metadata=None):
    """tensors: {name: float array}; stored as `dtype` (BF16, F16 or F32), names sorted (as the reference writer does)."""
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name])
        if dtype == "BF16":
            data = f32_to_bf16(a.astype(np.float32)).tobytes()
        else:
            data = np.ascontiguousarray(a, _NP[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def write_sharded(directory, tensors, shards, stem="model", dtype="BF16"):
    """The Hugging Face sharded layout: `{stem}-0000i-of-0000n.safetensors` + `{stem}.safetensors.index.json`.
    Tensors go to shards in name order, split into `shards` groups of about equal bytes."""
    names = sorted(tensors)
    sizes = [tensors[n].size * _SIZE[dtype] for n in names]
    total = sum(sizes)
    groups, cur, acc = [], [], 0
    for n, s in zip(names, sizes):
        cur.append(n)
        acc += s
        if acc >= total * (len(groups) + 1) / shards and len(groups) < shards - 1:
            groups.append(cur)
            cur = []
    groups.append(cur)
    groups = [g for g in groups if g]
    weight_map = {}
    for i, g in enumerate(groups):
        fname = f"{stem}-{i + 1:05d}-of-{len(groups):05d}.safetensors"
        write_file(os.path.join(directory, fname), {n: tensors[n] for n in g}, dtype, {"format": "pt"})
        for n in g:
            weight_map[n] = fname
    with open(os.path.join(directory, f"{stem}.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
        f.write("\n")
    return [os.path.join(directory, f) for f in sorted(set(weight_map.values()))]
