"""Patch VQ of the tiny model.

An image of H x W pixels (float32 in [0, 1], CHW) is cut into 16x16 patches; a patch is flattened in (c, y, x) order,
i.e. element index = c * 256 + y * 16 + x (768 values).  The codebook is 256 x 768.
  encode: nearest codebook entry by squared L2 (first index on ties)  -> codes [Hg, Wg] (row-major grid)
  decode: codebook lookup, clip to [0, 1]

The codebook is fitted by seeded k-means over the patches of the training images.  When there are at most 256
distinct patches (the toy world has 55) the fit is exact: every distinct patch is an entry (ordered by frequency,
then lexicographically, so the black background is code 0) and unused entries are filled deterministically with
constant patches 1.5 + 0.01 * j (far outside [0, 1], never the nearest entry of a real patch; they decode to white).
"""

import numpy as np
import torch
from torch import nn

PATCH = 16
CODEBOOK_SIZE = 256
DIM = 3 * PATCH * PATCH


def patches(pixels):
    """float [B, 3, H, W] -> [B, Hg, Wg, 768] in (c, y, x) order."""
    B, C, H, W = pixels.shape
    x = pixels.reshape(B, C, H // PATCH, PATCH, W // PATCH, PATCH)
    x = x.transpose(0, 2, 4, 1, 3, 5)
    return x.reshape(B, H // PATCH, W // PATCH, C * PATCH * PATCH)


def fit_codebook(pixels, seed=0, iters=25):
    """pixels float32 [B, 3, H, W] (training images) -> codebook float32 [256, 768]."""
    P = patches(np.asarray(pixels, dtype=np.float32)).reshape(-1, DIM)
    uniq, counts = np.unique(P, axis=0, return_counts=True)  # lexicographic order
    if len(uniq) <= CODEBOOK_SIZE:
        order = sorted(range(len(uniq)), key=lambda i: -counts[i])  # stable: ties keep lexicographic order
        used = uniq[order]
    else:
        used = _kmeans(P, CODEBOOK_SIZE, seed, iters)
    book = np.empty((CODEBOOK_SIZE, DIM), dtype=np.float32)
    book[: len(used)] = used
    for j in range(len(used), CODEBOOK_SIZE):
        book[j] = 1.5 + 0.01 * j
    return book


def _kmeans(P, k, seed, iters):
    rng = np.random.RandomState(seed)
    # k-means++ initialisation
    centres = [P[rng.randint(len(P))]]
    d = ((P - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        prob = d / d.sum() if d.sum() > 0 else np.full(len(P), 1.0 / len(P))
        c = P[rng.choice(len(P), p=prob)]
        centres.append(c)
        d = np.minimum(d, ((P - c) ** 2).sum(1))
    C = np.stack(centres).astype(np.float32)
    for _ in range(iters):
        a = encode_flat(P, C)
        for j in range(k):
            sel = P[a == j]
            if len(sel):
                C[j] = sel.mean(0)
    return C


def encode_flat(P, book):
    """[n, 768] -> [n] nearest entries (first on ties).  ||x||^2 is constant per patch and dropped."""
    d = (book * book).sum(1)[None, :] - 2.0 * (P @ book.T)
    return np.argmin(d, axis=1)


def encode(pixels, book):
    """float32 [B, 3, H, W] -> int64 [B, Hg, Wg]."""
    P = patches(np.asarray(pixels, dtype=np.float32))
    B, Hg, Wg, _ = P.shape
    return encode_flat(P.reshape(-1, DIM), book).reshape(B, Hg, Wg).astype(np.int64)


def decode(codes, book):
    """int64 [B, Hg, Wg] -> float32 [B, 3, H, W] (clipped to [0, 1])."""
    codes = np.asarray(codes)
    B, Hg, Wg = codes.shape
    x = book[codes.reshape(-1)].reshape(B, Hg, Wg, 3, PATCH, PATCH)
    x = x.transpose(0, 3, 1, 4, 2, 5).reshape(B, 3, Hg * PATCH, Wg * PATCH)
    return np.clip(x, 0.0, 1.0)


def to_uint8_hwc(pixels_chw):
    return np.clip(np.round(pixels_chw.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------------------
# torch modules for the ONNX graphs (dynamic B, H, W)

class VQEncode(nn.Module):
    def __init__(self, book):
        super().__init__()
        b = torch.tensor(book, dtype=torch.float32)
        self.register_buffer("book_t", b.t().contiguous())  # [768, 256]
        self.register_buffer("book_sq", (b * b).sum(1))  # [256]

    def forward(self, pixels):
        B, C, H, W = pixels.shape
        x = pixels.reshape(B, C, H // PATCH, PATCH, W // PATCH, PATCH)
        x = x.permute(0, 2, 4, 1, 3, 5)
        x = x.reshape(B, H // PATCH, W // PATCH, C * PATCH * PATCH)
        d = self.book_sq - 2.0 * torch.matmul(x, self.book_t)
        return torch.argmin(d, dim=-1)


class VQDecode(nn.Module):
    def __init__(self, book):
        super().__init__()
        self.register_buffer("book", torch.tensor(book, dtype=torch.float32))

    def forward(self, codes):
        B, Hg, Wg = codes.shape
        x = torch.index_select(self.book, 0, codes.reshape(-1))
        x = x.reshape(B, Hg, Wg, 3, PATCH, PATCH)
        x = x.permute(0, 3, 1, 4, 2, 5)
        x = x.reshape(B, 3, Hg * PATCH, Wg * PATCH)
        return torch.clamp(x, 0.0, 1.0)
