"""Sequence builders — exactly docs/model-interface.md §1.

Each builder returns (ids, targets): a list of token ids and the list of target indices into it (the image cells of
the generated image, or the generated region of an understanding row), in row-major / left-to-right order.
`codes` is an int array [Hg, Wg] of codebook indices, or None for an all-mask image.
"""

import numpy as np

from tokenizer import UNCONDITION


def image_block(tok, codes, hg=8, wg=8, mask_cells=None):
    """boi, [row: Wg codes, newline] x Hg, eoi.  Returns (ids, cell offsets inside the block)."""
    ids = [tok.boi]
    cells = []
    for r in range(hg):
        for c in range(wg):
            cells.append(len(ids))
            if codes is None or (mask_cells is not None and mask_cells[r, c]):
                ids.append(tok.mask)
            else:
                ids.append(tok.code_offset + int(codes[r, c]))
        ids.append(tok.newline)
    ids.append(tok.eoi)
    return ids, cells


def _gen_tail(tok, codes, hg, wg, mask_cells):
    blk, cells = image_block(tok, codes, hg, wg, mask_cells)
    tail = [tok.boa] + blk + [tok.eoa]
    return tail, [1 + c for c in cells]


def t2i(tok, caption, codes=None, uncond=False, hg=8, wg=8, mask_cells=None):
    """tok(SYS_t2i, USER) + [boa, boi] + rows + [eoi, eoa]; USER = <uncondition> for the unconditional branch."""
    prefix = tok.prompt("t2i", UNCONDITION if uncond else caption)
    tail, cells = _gen_tail(tok, codes, hg, wg, mask_cells)
    return prefix + tail, [len(prefix) + c for c in cells]


def i2i(tok, task, instruction, in_codes, out_codes=None, form="cond", hg=8, wg=8, mask_cells=None):
    """Image-to-image (edit etc.), branch `form` in {cond, uncondText, uncondImage}."""
    tail, cells = _gen_tail(tok, out_codes, hg, wg, mask_cells)
    if form == "uncondImage":
        prefix = tok.prompt(task, instruction)
    else:
        p = tok.prompt(task, UNCONDITION if form == "uncondText" else instruction)
        blk, _ = image_block(tok, in_codes, in_codes.shape[0], in_codes.shape[1])
        prefix = p[:-1] + blk + p[-1:]
    return prefix + tail, [len(prefix) + c for c in cells]


def mmu(tok, question, in_codes, answer_words=None, gen_length=8, uncond=False):
    """tok(SYS_mmu, USER)[:-1] + image + [last] + [boa] + gen region + [eoa].

    With `answer_words` (training) the gen region is answer + [eoa] + answerPad... (length gen_length); without it the
    region is all mask.  `uncond` (LLaDA): every position that is not a target is set to mask.
    """
    p = tok.prompt("mmu", question)
    blk, _ = image_block(tok, in_codes, in_codes.shape[0], in_codes.shape[1])
    prefix = p[:-1] + blk + p[-1:] + [tok.boa]
    if answer_words is None:
        region = [tok.mask] * gen_length
    else:
        region = list(tok.encode(answer_words)) + [tok.eoa]
        assert len(region) <= gen_length, (answer_words, gen_length)
        region += [tok.answerPad] * (gen_length - len(region))
    ids = prefix + region + [tok.eoa]
    targets = list(range(len(prefix), len(prefix) + gen_length))
    if uncond:
        ids = [tok.mask] * len(prefix) + ids[len(prefix):len(prefix) + gen_length] + [tok.mask]
    return ids, targets


def decode_answer(tok, region):
    """Generated region -> answer string: up to the first eoa, answerPad dropped."""
    words = []
    for t in region:
        t = int(t)
        if t == tok.eoa:
            break
        if t == tok.answerPad or t == tok.mask:
            continue
        words.append(tok.inverse.get(t, "<unk>"))
    return " ".join(words)


def pad_rows(rows, pad_to=None):
    """rows: list of id lists -> (input_ids, position_ids, attention_mask) int64 arrays padded at the end."""
    L = max(len(r) for r in rows)
    if pad_to is not None:
        L = max(L, pad_to)
    R = len(rows)
    ids = np.zeros((R, L), dtype=np.int64)
    pos = np.zeros((R, L), dtype=np.int64)
    att = np.zeros((R, L), dtype=np.int64)
    for i, r in enumerate(rows):
        n = len(r)
        ids[i, :n] = r
        pos[i, :n] = np.arange(n)
        att[i, :n] = 1
    return ids, pos, att
