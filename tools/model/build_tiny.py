"""Build the tiny model: data -> VQ -> training -> evaluation -> ONNX export -> manifest (docs/model-interface.md).

    /usr/bin/python3 tools/model/build_tiny.py --out models/tiny

Seeded and deterministic for a given machine/BLAS.  Writes into --out: tokenizer.json, world.json, the seven graphs,
weights.npz (float16 transformer weights + float32 codebook, for re-export without retraining), manifest.json,
train-report.json and README.md; then runs conformance.py on the result.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # torch's own 2 threads do the parallel work
os.environ.setdefault("OMP_NUM_THREADS", "2")

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402

import evaluate  # noqa: E402
import export  # noqa: E402
import train  # noqa: E402
import vq  # noqa: E402
import world  # noqa: E402
from conformance import sha256  # noqa: E402  (one definition of the manifest's file hash)
from model import Config, DimooLM  # noqa: E402
from tokenizer import PROMPT_TEMPLATE, SYS, UNCONDITION, Tokenizer  # noqa: E402

NAME = "dimoo-tiny"
VERSION = "1.0.0"
GRAPHS = ["denoise", "denoise_partial", "sample_head", "forward_logits", "vq_encode", "vq_decode", "denoise_segment",
          "denoise_resident", "cache_gather", "cache_concat"]
CACHE_DEFAULTS = {"cacheRatio": 0.9, "warmupRatio": 0.3, "refreshInterval": 5}


def world_codes(book):
    imgs = np.stack([world.to_chw01(world.render(*c)) for c in world.ALL_COMBOS])
    codes = vq.encode(imgs, book)
    return {c: codes[i] for i, c in enumerate(world.ALL_COMBOS)}


def manifest(tok, cfg, out_dir, description):
    m = {
        "interfaceVersion": 2,
        "name": NAME,
        "version": VERSION,
        "description": description,
        "architecture": cfg.to_dict(),
        "tokens": tok.tokens_manifest(),
        "tokenizer": {"kind": "word", "file": "tokenizer.json"},
        "templates": {"prompt": PROMPT_TEMPLATE, "uncondition": UNCONDITION, "sys": dict(SYS)},
        "image": {"gridFactor": 16, "minSize": 128, "maxSize": 128, "defaultHeight": 128, "defaultWidth": 128,
                  "maxAspect": 1},
        "lengthBucket": 16,
        "defaults": {
            "t2i": {"steps": 16, "cfg": 0, "temperature": 0},
            "i2i": {"steps": 16, "cfg": 0, "cfgImage": 0, "temperature": 0},
            "mmu": {"steps": 8, "genLength": 8, "blockLength": 8, "cfg": 0, "temperature": 0},
            "cache": dict(CACHE_DEFAULTS),
        },
        "limits": {"maxSteps": 256, "maxCfg": 20, "maxTemperature": 5, "maxGenLength": 32, "maxBatchRows": 64},
        "graphs": {g: g + ".onnx" for g in GRAPHS},
        "segmentSteps": CACHE_DEFAULTS["refreshInterval"],  # denoise_segment's unroll (docs/model-interface.md §4.6)
        "files": {},
    }
    for f in [g + ".onnx" for g in GRAPHS] + ["tokenizer.json", "world.json"]:
        p = os.path.join(out_dir, f)
        m["files"][f] = {"sha256": sha256(p), "bytes": os.path.getsize(p)}
    return m


def save_weights(lm, book, path):
    arrs = {k: v.detach().numpy().astype(np.float16) for k, v in lm.state_dict().items()}
    arrs["vq.codebook"] = book.astype(np.float32)
    np.savez_compressed(path, **arrs)


def load_weights(path):
    """-> (DimooLM, codebook) from weights.npz (architecture from the tensor shapes and manifest.json beside it)."""
    z = np.load(path)
    with open(os.path.join(os.path.dirname(path), "manifest.json")) as f:
        a = json.load(f)["architecture"]
    cfg = Config(vocab_size=a["vocabSize"], d_model=a["dModel"], n_layers=a["nLayers"], n_heads=a["nHeads"],
                 ffn_hidden=a["ffnHidden"], rope_theta=a["ropeTheta"])
    lm = DimooLM(cfg)
    sd = {k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files if k != "vq.codebook"}
    lm.load_state_dict(sd)
    lm.eval()
    return lm, z["vq.codebook"]


def write_readme(out_dir, report):
    r = report
    tr = r["training"]
    lines = [
        "# dimoo-tiny",
        "",
        "A tiny Lumina-DiMOO-style masked-diffusion model (LLaDA-style bidirectional transformer + 16x16 patch VQ)",
        "trained on a toy world of coloured shapes, for the engine's and runtime's tests. It follows",
        "`docs/model-interface.md` (interface version 1); `manifest.json` lists every file with its sha256.",
        "",
        "World (`world.json`): 128x128 black canvas, one shape (square / circle / triangle) in a 32x32 box at one of",
        "nine positions, six colours; caption `a {colour} {shape} at the {position}`; edits `make it {colour}`,",
        "`move it to the {position}`, `make it a {shape}`; questions `what colour is the shape ?`,",
        "`what shape is it ?`, `where is the shape ?`. The 54 combinations with (colour + shape + position) % 3 == 0",
        "are held out of every training image.",
        "",
        "Rebuild (seeded; see `tools/model/README.md`):",
        "",
        "    /usr/bin/python3 tools/model/build_tiny.py --out models/tiny",
        "",
        f"Model: {r['architecture']}, {tr['parameters']} parameters; trained {tr['steps']} steps of batch "
        f"{tr['batchSize']} in {tr['seconds']:.0f} s (final loss {tr['finalLoss']:.4f}); whole build "
        f"{r['buildSeconds']:.0f} s.",
        "",
        "Evaluation (greedy, no guidance; details in `train-report.json`):",
        "",
        r["table"],
        "",
        "Targets: " + ", ".join(f"{k} {v['value']:.3f} (>= {v['threshold']}: {'ok' if v['ok'] else 'SHORT'})"
                                for k, v in r["thresholds"].items()) + ".",
        "",
        "Token ids: " + ", ".join(f"{k} {v}" for k, v in r["tokens"].items() if v is not None) +
        f", V {r['architecture']['vocabSize']} (no BOS/EOS); `<system>` {r['specialIds']['<system>']}, "
        f"`</system>` {r['specialIds']['</system>']}, `<user>` {r['specialIds']['<user>']}, "
        f"`</user>` {r['specialIds']['</user>']}.",
        "",
        "`weights.npz` holds the float16 transformer weights (names as the LLaDA checkpoint) and the float32 VQ",
        "codebook, so the graphs can be re-exported without retraining (`tools/model/export.py --from models/tiny`).",
        "",
    ]
    with open(os.path.join(out_dir, "README.md"), "w") as f:
        f.write("\n".join(lines))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="models/tiny")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--warm-t2i", type=int, default=600, help="first N batches t2i only (curriculum; 0 = off)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(args.threads)
    out = args.out
    os.makedirs(out, exist_ok=True)

    def log(msg):
        print(f"[{time.time() - t_start:7.1f}s] {msg}", flush=True)

    # 1. tokenizer + world
    tok = Tokenizer()
    tok.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "world.json"), "w") as f:
        json.dump(world.world_json(), f, indent=1)
        f.write("\n")
    log(f"tokenizer: {len(tok.words)} words, textVocabSize {tok.text_vocab_size}, V {tok.vocab_size}, "
        f"ids {tok.ids}")

    # 2. VQ on the training images only
    train_imgs = np.stack([world.to_chw01(world.render(*c)) for c in world.TRAIN])
    book = vq.fit_codebook(train_imgs, seed=args.seed)
    codes = world_codes(book)
    used = len(np.unique(np.stack(list(codes.values()))))
    log(f"VQ: {used} codes used by the world's images")

    # 3. training
    lm, tinfo = train.train(tok, codes, steps=args.steps, batch_size=args.batch, lr=args.lr, warmup=args.warmup,
                            seed=args.seed, log=log, warm_t2i=args.warm_t2i)
    export.round_weights_fp16(lm)

    # 4. evaluation
    t_eval = time.time()
    rep = evaluate.evaluate(lm, tok, book, codes, log=log)
    tab = evaluate.table(rep)
    thr = evaluate.thresholds_met(rep)
    log("evaluation:\n" + tab)
    log("thresholds: " + ", ".join(f"{k} {v['value']:.3f}>={v['threshold']} {'ok' if v['ok'] else 'SHORT'}"
                                   for k, v in thr.items()))
    eval_seconds = time.time() - t_eval

    # 5. export
    t_exp = time.time()
    export.export_all(lm, tok, book, out, segment_steps=CACHE_DEFAULTS["refreshInterval"])
    checks = export.torch_checks(lm, tok, log=log, segment_steps=CACHE_DEFAULTS["refreshInterval"])
    save_weights(lm, book, os.path.join(out, "weights.npz"))
    export_seconds = time.time() - t_exp

    desc = (f"Tiny Lumina-DiMOO-style model ({tinfo['parameters']} parameters) trained on a toy world of coloured "
            "shapes (128x128, 8x8 codes); for tests only.")
    man = manifest(tok, lm.cfg, out, desc)
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(man, f, indent=1)
        f.write("\n")

    report = {
        "command": "/usr/bin/python3 tools/model/build_tiny.py " + " ".join(sys.argv[1:]),
        "architecture": lm.cfg.to_dict(),
        "tokens": tok.tokens_manifest(),
        "specialIds": tok.special,
        "training": {k: v for k, v in tinfo.items()},
        "evaluation": rep,
        "thresholds": thr,
        "table": tab,
        "torchChecks": checks,
        "evalSeconds": eval_seconds,
        "exportSeconds": export_seconds,
        "torchVersion": torch.__version__,
        "threads": args.threads,
    }
    report["buildSeconds"] = time.time() - t_start
    with open(os.path.join(out, "train-report.json"), "w") as f:
        json.dump(report, f, indent=1)
        f.write("\n")
    write_readme(out, report)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    log(f"wrote {out}: {total} bytes; " + ", ".join(f"{f} {os.path.getsize(os.path.join(out, f))}"
                                                     for f in sorted(os.listdir(out))))

    # 6. conformance
    import conformance
    rc = conformance.main([out])
    log(f"conformance exit {rc}; build {time.time() - t_start:.0f} s")
    return rc


if __name__ == "__main__":
    sys.exit(main())
