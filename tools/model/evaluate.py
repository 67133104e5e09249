"""Evaluation of the tiny model with PyTorch reference samplers (greedy, no guidance).

  * checker sanity: the pixel checker on the ground-truth images of all 162 combinations;
  * t2i: the 54 held-out captions, 16 steps, cosine schedule keep_n = floor(N0 cos(pi/2 (s+1)/T)) (>= 1, 0 on the
    last step), every masked cell sampled (tau = 0: argmax over the image-code slice), then the keep_n lowest-confidence
    of them re-masked (strict '<' cutoff on log p, as libs/diffusion); colour / position / shape accuracy;
  * understanding: the 3 questions on the 54 held-out images, gen_length 8, block 8, 8 steps, LLaDA low-confidence
    remasking (one token per step), text slice [0, textVocabSize); exact-match accuracy;
  * edit: 162 edits (colour / position / shape, one of each per held-out output) from training inputs to held-out
    outputs, 16 steps; an edit is right when the output image shows the target colour, shape and position;
  * inpainting / outpainting sanity on the held-out images: mask the 4x4 cells around the shape (inpaint) or every
    cell outside the shape's 2x2 cells (outpaint), caption = the image's caption, 16 steps.
"""

import math

import numpy as np
import torch

import sequences as S
import vq
import world
from model import sample_rule


def _forward_slice(model, rows, lo, hi, targets):
    ids, pos, att = S.pad_rows(rows)
    tp = np.array(targets, dtype=np.int64)
    with torch.no_grad():
        logits, _ = model.full_step(torch.from_numpy(ids), torch.from_numpy(pos), torch.from_numpy(att),
                                    torch.tensor([lo, hi]))
        tl = torch.gather(logits, 1, torch.from_numpy(tp).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    return tl


def greedy_rule(tl):
    """Per-row (no guidance) greedy sampling through the §3 rule."""
    R, N, _ = tl.shape
    idx, p = sample_rule(tl, torch.ones(R, 1), torch.zeros(R), torch.full((R, N), 0.5))
    return idx.numpy(), p.numpy()


def sample_images(model, tok, seqs, steps=16):
    """seqs: list of (ids, targets) with mask at the cells to generate -> list of code arrays [N] (row-major)."""
    rows = [list(ids) for ids, _ in seqs]
    targets = [list(t) for _, t in seqs]
    n0 = [sum(1 for p in t if rows[i][p] == tok.mask) for i, t in enumerate(targets)]
    lo, hi = tok.code_offset, tok.vocab_size
    for s in range(steps):
        masked = [[j for j, p in enumerate(t) if rows[i][p] == tok.mask] for i, t in enumerate(targets)]
        if not any(masked):
            break
        idx, prob = greedy_rule(_forward_slice(model, rows, lo, hi, targets))
        for i, m in enumerate(masked):
            if not m:
                continue
            if s < steps - 1:
                keep = max(1, int(math.floor(n0[i] * math.cos(math.pi / 2 * (s + 1) / steps))))
            else:
                keep = 0
            for j in m:
                rows[i][targets[i][j]] = lo + int(idx[i, j])
            c = np.log(np.maximum(prob[i, m].astype(np.float64), 1e-20))
            k = min(max(keep, 0), len(m) - 1)
            cut = np.sort(c)[k]
            for jj, j in enumerate(m):
                if keep > 0 and c[jj] < cut:
                    rows[i][targets[i][j]] = tok.mask
    out = []
    for i, t in enumerate(targets):
        out.append(np.array([rows[i][p] - lo for p in t], dtype=np.int64))
    return out


def sample_text(model, tok, seqs, steps=8, block=8):
    """LLaDA low-confidence remasking, greedy.  seqs: (ids, targets) with the gen region masked."""
    rows = [list(ids) for ids, _ in seqs]
    targets = [list(t) for _, t in seqs]
    gl = len(targets[0])
    nblocks = gl // block
    spb = steps // nblocks
    for b in range(nblocks):
        blk = [list(range(b * block, (b + 1) * block))] * len(rows)
        nb = [sum(1 for j in blk[i] if rows[i][targets[i][j]] == tok.mask) for i in range(len(rows))]
        for it in range(spb):
            idx, prob = greedy_rule(_forward_slice(model, rows, 0, tok.text_vocab_size, targets))
            for i in range(len(rows)):
                quota = nb[i] // spb + (1 if it < nb[i] % spb else 0)
                cand = [j for j in blk[i] if rows[i][targets[i][j]] == tok.mask]
                cand.sort(key=lambda j: -float(prob[i, j]))  # stable: first index on ties
                for j in cand[:quota]:
                    rows[i][targets[i][j]] = int(idx[i, j])
    return [[rows[i][p] for p in targets[i]] for i in range(len(rows))]


def decode_check(codes_list, book, hg=8, wg=8):
    res = []
    for c in codes_list:
        px = vq.decode(c.reshape(1, hg, wg), book)[0]
        res.append(world.check_image(vq.to_uint8_hwc(px)))
    return res


def eval_edits_set():
    """One colour, one position and one shape edit per held-out output, from training inputs (deterministic)."""
    out = []
    for dst in world.HELD_OUT:
        srcs = world.edits_from(dst, lambda c: not world.is_held_out(*c))  # neighbours (kind, dst, src)
        for kind in ("colour", "position", "shape"):
            cands = [e[2] for e in srcs if e[0] == kind]
            src = cands[sum(dst) % len(cands)]
            out.append((kind, src, dst))
    return out


def evaluate(model, tok, book, codes_by_combo, log=print, steps=16):
    model.eval()
    rep = {}
    # checker on ground truth
    ok = sum(1 for c in world.ALL_COMBOS if world.check_image(world.render(*c)) == c)
    rep["checkerGroundTruth"] = ok / len(world.ALL_COMBOS)
    # VQ round trip of every world image
    imgs = np.stack([world.to_chw01(world.render(*c)) for c in world.ALL_COMBOS])
    rt = vq.decode(vq.encode(imgs, book), book)
    rep["vqExactRoundTrip"] = float(np.mean(np.all(np.abs(rt - imgs) < 1e-6, axis=(1, 2, 3))))

    def score(results, want):
        col = np.mean([r is not None and r[0] == w[0] for r, w in zip(results, want)])
        shp = np.mean([r is not None and r[1] == w[1] for r, w in zip(results, want)])
        pos = np.mean([r is not None and r[2] == w[2] for r, w in zip(results, want)])
        allc = np.mean([r == w for r, w in zip(results, want)])
        return {"colour": float(col), "shape": float(shp), "position": float(pos), "all": float(allc),
                "n": len(want)}

    held = list(world.HELD_OUT)
    # t2i
    seqs = [S.t2i(tok, world.caption(*c)) for c in held]
    gen = sample_images(model, tok, seqs, steps)
    rep["t2i"] = score(decode_check(gen, book), held)
    exact = np.mean([np.array_equal(g.reshape(8, 8), codes_by_combo[c]) for g, c in zip(gen, held)])
    rep["t2i"]["exactCodes"] = float(exact)
    # training captions too (for reference)
    tr = list(world.TRAIN)
    gen_tr = sample_images(model, tok, [S.t2i(tok, world.caption(*c)) for c in tr], steps)
    rep["t2iTrain"] = score(decode_check(gen_tr, book), tr)
    # understanding
    qs = []
    want = []
    for c in held:
        for kind in ("colour", "shape", "position"):
            qs.append(S.mmu(tok, world.QUESTIONS[kind], codes_by_combo[c], None, 8))
            want.append(world.answer(kind, *c))
    outs = sample_text(model, tok, qs, steps=8, block=8)
    answers = [S.decode_answer(tok, o) for o in outs]
    per = {}
    for i, (a, w) in enumerate(zip(answers, want)):
        kind = ("colour", "shape", "position")[i % 3]
        per.setdefault(kind, []).append(a == w)
    rep["mmu"] = {"accuracy": float(np.mean([a == w for a, w in zip(answers, want)])), "n": len(want),
                  **{k: float(np.mean(v)) for k, v in per.items()}}
    bad = [(w, a) for a, w in zip(answers, want) if a != w]
    rep["mmu"]["wrongExamples"] = bad[:10]
    # edits
    edits = eval_edits_set()
    seqs = [S.i2i(tok, "edit", world.edit_instruction(k, *dst), codes_by_combo[src]) for k, src, dst in edits]
    gen = sample_images(model, tok, seqs, steps)
    res = decode_check(gen, book)
    rep["edit"] = score(res, [e[2] for e in edits])
    for kind in ("colour", "position", "shape"):
        sel = [i for i, e in enumerate(edits) if e[0] == kind]
        rep["edit"][kind + "Edits"] = float(np.mean([res[i] == edits[i][2] for i in sel]))
    # inpainting / outpainting sanity
    inp, outp = [], []
    for c in held:
        bx, by = world.POSITIONS[c[2]][1]
        r0, c0 = by // 16, bx // 16
        m_in = np.zeros((8, 8), dtype=bool)
        m_in[max(0, r0 - 1):r0 + 3, max(0, c0 - 1):c0 + 3] = True
        m_out = np.ones((8, 8), dtype=bool)
        m_out[r0:r0 + 2, c0:c0 + 2] = False
        inp.append(S.t2i(tok, world.caption(*c), codes_by_combo[c], mask_cells=m_in))
        outp.append(S.t2i(tok, world.caption(*c), codes_by_combo[c], mask_cells=m_out))
    rep["inpaint"] = score(decode_check(sample_images(model, tok, inp, steps), book), held)
    rep["outpaint"] = score(decode_check(sample_images(model, tok, outp, steps), book), held)
    return rep


def table(rep):
    lines = []
    add = lines.append
    add("| evaluation (greedy, no guidance) | n | colour | shape | position | all |")
    add("|---|---|---|---|---|---|")
    for key, name in (("t2i", "t2i, held-out captions, 16 steps"), ("t2iTrain", "t2i, training captions"),
                      ("edit", "edit -> held-out outputs, 16 steps"), ("inpaint", "inpaint 4x4 around shape"),
                      ("outpaint", "outpaint outside the shape")):
        r = rep[key]
        add(f"| {name} | {r['n']} | {r['colour']:.3f} | {r['shape']:.3f} | {r['position']:.3f} | {r['all']:.3f} |")
    m = rep["mmu"]
    add(f"| understanding, held-out images, 8 steps | {m['n']} | {m['colour']:.3f} | {m['shape']:.3f} | "
        f"{m['position']:.3f} | {m['accuracy']:.3f} |")
    add("")
    add(f"t2i exact codes (held-out): {rep['t2i']['exactCodes']:.3f}; edits by kind: colour "
        f"{rep['edit']['colourEdits']:.3f}, position {rep['edit']['positionEdits']:.3f}, shape "
        f"{rep['edit']['shapeEdits']:.3f}")
    add(f"checker on ground truth (162 images): {rep['checkerGroundTruth']:.3f}; VQ exact round trip: "
        f"{rep['vqExactRoundTrip']:.3f}")
    return "\n".join(lines)


THRESHOLDS = {"t2i.colour": 0.95, "t2i.position": 0.90, "t2i.shape": 0.75, "mmu.accuracy": 0.90, "edit.all": 0.80}


def thresholds_met(rep):
    out = {}
    for k, v in THRESHOLDS.items():
        a, b = k.split(".")
        out[k] = {"value": rep[a][b], "threshold": v, "ok": rep[a][b] >= v}
    return out


def main(argv=None):
    """Evaluate a built model directory from its weights.npz:  /usr/bin/python3 tools/model/evaluate.py models/tiny"""
    import os
    import sys

    import build_tiny
    from tokenizer import Tokenizer
    argv = sys.argv[1:] if argv is None else argv
    d = argv[0] if argv else "models/tiny"
    torch.set_num_threads(2)
    tok = Tokenizer.load(os.path.join(d, "tokenizer.json"))
    lm, book = build_tiny.load_weights(os.path.join(d, "weights.npz"))
    codes = build_tiny.world_codes(book)
    rep = evaluate(lm, tok, book, codes)
    print(table(rep))
    for k, v in thresholds_met(rep).items():
        print(f"{k}: {v['value']:.3f} (>= {v['threshold']}) {'ok' if v['ok'] else 'SHORT'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
