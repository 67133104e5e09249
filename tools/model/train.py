"""Masked-diffusion training of the tiny model (LLaDA objective) on the toy world.

Per example: t ~ U(0.02, 1); each target cell (image codes of the generated image, or the generated region of an
understanding row — never newlines or specials) is masked with probability t (at least one); cross-entropy over the
full vocabulary on the masked targets, averaged over all masked positions of the batch.

Task mix (per batch, one task per batch so that rows have similar lengths): t2i 40%, edit 35%, mmu 25%.
  t2i:  25% of examples mask a random axis-aligned rectangle of cells instead (1/3 of those mask the outside of the
        rectangle: outpainting); 10% use the unconditional prompt (USER = <uncondition>).
  edit: 10% uncondText form, 10% uncondImage form (docs/model-interface.md §1).
  mmu:  gen_length ~ U{4..8}; 10% LLaDA-unconditional rows (every non-target position set to mask).
Only training combinations of the world are used (no held-out combination appears in any image).
"""

import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F

import sequences as S
import world
from model import Config, DimooLM

TASK_MIX = (("t2i", 0.40), ("edit", 0.35), ("mmu", 0.25))


class Data:
    def __init__(self, tok, codes_by_combo):
        self.tok = tok
        self.codes = codes_by_combo
        self.train = list(world.TRAIN)
        train_set = set(self.train)
        self.edits = []
        for src in self.train:
            self.edits.extend(world.edits_from(src, lambda c: c in train_set))
        self.kinds = ["colour", "shape", "position"]

    # -- clean sequences ---------------------------------------------------------------------------------
    def t2i_example(self, rng):
        tok = self.tok
        combo = self.train[rng.randrange(len(self.train))]
        uncond = rng.random() < 0.10
        ids, targets = S.t2i(tok, world.caption(*combo), self.codes[combo], uncond=uncond)
        hg, wg = self.codes[combo].shape
        if rng.random() < 0.25:
            r0, r1 = sorted(rng.sample(range(hg + 1), 2))
            c0, c1 = sorted(rng.sample(range(wg + 1), 2))
            inside = np.zeros((hg, wg), dtype=bool)
            inside[r0:r1, c0:c1] = True
            sel = ~inside if rng.random() < 1.0 / 3.0 else inside
            sel = sel.reshape(-1)
            if not sel.any():
                sel[rng.randrange(len(sel))] = True
            return ids, targets, sel
        return ids, targets, None

    def edit_example(self, rng):
        kind, src, dst = self.edits[rng.randrange(len(self.edits))]
        u = rng.random()
        form = "uncondText" if u < 0.10 else ("uncondImage" if u < 0.20 else "cond")
        ids, targets = S.i2i(self.tok, "edit", world.edit_instruction(kind, *dst), self.codes[src], self.codes[dst],
                             form=form)
        return ids, targets, None

    def mmu_example(self, rng):
        combo = self.train[rng.randrange(len(self.train))]
        kind = self.kinds[rng.randrange(3)]
        gl = rng.randint(4, 8)
        ids, targets = S.mmu(self.tok, world.QUESTIONS[kind], self.codes[combo], world.answer(kind, *combo), gl,
                             uncond=rng.random() < 0.10)
        return ids, targets, None

    def example(self, rng, task):
        return getattr(self, task + "_example")(rng)

    # -- masking -----------------------------------------------------------------------------------------
    def batch(self, rng, task, size):
        rows, labels, flat = [], [], []
        for _ in range(size):
            ids, targets, sel = self.example(rng, task)
            ids = list(ids)
            n = len(targets)
            if sel is None:
                t = rng.uniform(0.02, 1.0)
                sel = np.array([rng.random() < t for _ in range(n)], dtype=bool)
                if not sel.any():
                    sel[rng.randrange(n)] = True
            rows.append((ids, [targets[i] for i in range(n) if sel[i]]))
        ids_l = []
        for ids, masked in rows:
            for p in masked:
                labels.append(ids[p])
                ids[p] = self.tok.mask
            ids_l.append(ids)
        inp, pos, att = S.pad_rows(ids_l)
        L = inp.shape[1]
        for b, (_, masked) in enumerate(rows):
            flat.extend(b * L + p for p in masked)
        return (torch.from_numpy(inp), torch.from_numpy(pos), torch.from_numpy(att),
                torch.tensor(flat, dtype=torch.int64), torch.tensor(labels, dtype=torch.int64))


def lr_at(step, total, peak, warmup, floor=0.1):
    if step < warmup:
        return peak * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(tok, codes_by_combo, steps, batch_size=16, lr=1e-3, warmup=100, weight_decay=0.01, seed=0,
          cfg_kwargs=None, log=print, log_every=50, task_mix=TASK_MIX, betas=(0.9, 0.95), hook=None, hook_every=0,
          warm_t2i=0):
    seed_all(seed)
    cfg = Config(vocab_size=tok.vocab_size, **(cfg_kwargs or {}))
    model = DimooLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params} parameters, {cfg.to_dict()}")
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas, eps=1e-8)
    data = Data(tok, codes_by_combo)
    rng = random.Random(seed)
    tasks = [t for t, _ in task_mix]
    weights = [w for _, w in task_mix]
    # curriculum: the first `warm_t2i` batches are t2i only; the rest use a mix chosen so that the whole run still
    # has the task_mix proportions in expectation
    warm_t2i = min(warm_t2i, int(dict(task_mix).get("t2i", 0) * steps))
    weights2 = [(w * steps - (warm_t2i if t == "t2i" else 0)) / max(1, steps - warm_t2i) for t, w in task_mix]
    ema = {t: None for t in tasks}
    history = []
    t0 = time.time()
    model.train()
    for step in range(steps):
        task = "t2i" if step < warm_t2i else rng.choices(tasks, weights2)[0]
        ids, pos, att, flat, labels = data.batch(rng, task, batch_size)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr, warmup)
        h = model.hidden_at(ids, pos, att, flat)
        logits = model.transformer["ff_out"](h)
        loss = F.cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        lv = float(loss)
        ema[task] = lv if ema[task] is None else 0.95 * ema[task] + 0.05 * lv
        if (step + 1) % log_every == 0 or step == 0 or step + 1 == steps:
            el = time.time() - t0
            msg = " ".join(f"{t}={ema[t]:.3f}" for t in tasks if ema[t] is not None)
            log(f"step {step + 1}/{steps} loss {lv:.4f} ema[{msg}] lr {opt.param_groups[0]['lr']:.2e} "
                f"{el:.0f}s ({(step + 1) / el:.2f} it/s)")
            history.append({"step": step + 1, "loss": lv, **{f"ema_{t}": ema[t] for t in tasks}, "seconds": el})
        if hook is not None and hook_every and (step + 1) % hook_every == 0:
            model.eval()
            hook(step + 1, model)
            model.train()
    model.eval()
    info = {
        "parameters": n_params,
        "steps": steps,
        "batchSize": batch_size,
        "peakLr": lr,
        "warmup": warmup,
        "weightDecay": weight_decay,
        "seed": seed,
        "taskMix": dict(task_mix),
        "warmT2iSteps": warm_t2i,
        "taskMixAfterWarm": dict(zip(tasks, weights2)),
        "seconds": time.time() - t0,
        "finalLoss": history[-1]["loss"],
        "finalEma": {t: ema[t] for t in tasks},
        "history": history,
    }
    return model, info
