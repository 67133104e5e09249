#!/usr/bin/env python3
"""GPU benchmark of the Lumina-DiMOO-shaped transformer of tools/model/model.py (random weights, timing only).

Measures what the CPU-only project cannot: on one CUDA device, at the shape of a 1024x1024 text-to-image job with
guidance (two rows per sequence), how long

  a. a full step takes (the `denoise` graph: DimooLM.full_step + the target gather + model.sample_rule, through
     export.DenoiseGraph) at B = 1, 2, 4, 8 sequences (R = 2B rows), and what batching gains in images/s;
  b. an ML-Cache refresh segment takes (export.SegmentGraph: one full step + T-1 partial steps in one call,
     docs/model-interface.md 4.6, cache_ratio 0.9) against T full steps, at B = 1 and the largest B that fit;
     also the segment graph with only its first step active (cache_ratio 1), i.e. the GPU path's step without cache;
  c. the peak device memory of every case.

Usage (repository root, a CUDA build of PyTorch):

    python3 tools/bench/gpu_engine.py --json gpu-engine.json
    python3 tools/bench/gpu_engine.py --quick            # tiny dims, CPU when there is no CUDA: a smoke test

Only public entry points of tools/model are used: model.Config, model.DimooLM, DimooLM.full_step,
model.sample_rule, export.DenoiseGraph, export.SegmentGraph (inputs in export.SEGMENT_IN order). Nothing in
tools/model is patched. Where model.py does not run in the requested dtype, the failing op is reported and the
benchmark falls back (bf16 weights under torch.autocast, then float32), saying so in the report.
"""

import argparse
import contextlib
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.normpath(os.path.join(HERE, "..", "model"))
REPO_ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, MODEL_DIR)

import torch  # noqa: E402

import export as export_mod  # noqa: E402  (tools/model is put on sys.path above; needs numpy and onnx too)
import model as model_mod  # noqa: E402

IMPORT_NOTES = []

Config = model_mod.Config
DimooLM = model_mod.DimooLM
sample_rule = model_mod.sample_rule

# ---------------------------------------------------------------------------------------------------------------
# shapes

# LLaDA-8B as Lumina-DiMOO ships it (docs/models.md 1.1/1.3, spec 4.1): 32 layers x (d 4096, 32 heads, SwiGLU 12288),
# vocabulary 126,356 text + 8,192 image codes = 134,548, RoPE theta 500000, RMSNorm eps 1e-5.
REAL = dict(vocab=134548, d_model=4096, n_heads=32, ffn_hidden=12288, rope_theta=500000.0, eps=1e-5,
            code_offset=126356, n_codes=8192,
            # token ids (docs/models.md 1.1): mask, row end, <IMAGE>, </IMAGE>, <answer>, </answer>, <uncondition>
            ids=dict(mask=126336, newline=126084, boi=126349, eoi=126350, boa=126354, eoa=126355, uncond=126351),
            text_ids=(1000, 126000))
# --quick: a tiny model with the same layout (vocabulary 336 = 80 text/special ids + 256 image codes)
QUICK = dict(vocab=336, d_model=128, n_heads=4, ffn_hidden=384, rope_theta=500000.0, eps=1e-5,
             code_offset=80, n_codes=256,
             ids=dict(mask=1, newline=2, boi=3, eoi=4, boa=5, eoa=6, uncond=7),
             text_ids=(10, 80))

GUIDANCE = 4.0  # cfg scale: z = (1 + s) * cond - s * uncond, guidance_weights [1 + s, -s]
TEMPERATURE = 1.0
CACHE_RATIO = 0.9
WARMUP_RATIO = 0.3  # the tiny/twin manifests' defaults.cache (tools/model/build_tiny.py CACHE_DEFAULTS)


def round_up(x, m):
    return (x + m - 1) // m * m


def t2i_row(ids, text_ids, prompt_len, hg, wg, gen, uncond=False):
    """One t2i row as tools/model/sequences.py lays it out: prompt + [boa, boi] + Hg x (Wg masks + row end) +
    [eoi, eoa]; L_row = P + 4 + Hg (Wg + 1). The prompt is random text ids (the unconditional branch ends with
    <uncondition>). Returns (token list, target positions)."""
    lo, hi = text_ids
    prompt = torch.randint(lo, hi, (prompt_len,), generator=gen).tolist()
    if uncond:
        prompt[-1] = ids["uncond"]
    row = prompt + [ids["boa"], ids["boi"]]
    targets = []
    for _ in range(hg):
        for _ in range(wg):
            targets.append(len(row))
            row.append(ids["mask"])
        row.append(ids["newline"])
    row += [ids["eoi"], ids["eoa"]]
    return row, targets


def build_inputs(spec, B, grid, prompt_len, uncond_len, steps, device, seed=0):
    """Inputs of DenoiseGraph (export.DENOISE_IN) and SegmentGraph (export.SEGMENT_IN) for B sequences x G = 2
    guidance branches (row r = b*G + g; g = 0 conditional, 1 unconditional), L padded to a multiple of 16 (the
    unconditional row, shorter, is padded at the end with attention_mask 0), N = grid^2 targets, T = `steps`."""
    gen = torch.Generator().manual_seed(seed + B)
    G = 2
    rows, tps = [], []
    for _ in range(B):
        for g in range(G):
            r, t = t2i_row(spec["ids"], spec["text_ids"], prompt_len if g == 0 else uncond_len, grid, grid, gen,
                           uncond=g == 1)
            rows.append(r)
            tps.append(t)
    L = round_up(max(len(r) for r in rows), 16)
    R = B * G
    N = grid * grid
    input_ids = torch.zeros(R, L, dtype=torch.int64)
    position_ids = torch.zeros(R, L, dtype=torch.int64)
    attention_mask = torch.zeros(R, L, dtype=torch.int64)
    for i, r in enumerate(rows):
        n = len(r)
        input_ids[i, :n] = torch.tensor(r, dtype=torch.int64)
        position_ids[i, :n] = torch.arange(n)
        attention_mask[i, :n] = 1
    target_positions = torch.tensor(tps, dtype=torch.int64)
    guidance_weights = torch.tensor([[1.0 + GUIDANCE, -GUIDANCE]] * B, dtype=torch.float32)
    vocab_range = torch.tensor([spec["code_offset"], spec["code_offset"] + spec["n_codes"]], dtype=torch.int64)
    temperature = torch.full((B,), TEMPERATURE, dtype=torch.float32)
    uniforms_seg = torch.rand(B, steps, N, generator=gen).clamp(1e-3, 1 - 1e-3)
    u = torch.rand(B, steps, N, generator=gen, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
    remask_noise = TEMPERATURE * -torch.log(-torch.log(u))  # tau * Gumbel, float64
    # keep_n after each step: a 64-step linear schedule's masked count (the value only moves the remask cut-off)
    keep = torch.tensor([max(0, N - (s + 1) * N // 64) for s in range(steps)], dtype=torch.int64)
    d = {
        "input_ids": input_ids, "position_ids": position_ids, "attention_mask": attention_mask,
        "target_positions": target_positions, "guidance_weights": guidance_weights, "vocab_range": vocab_range,
        "temperature": temperature, "uniforms": uniforms_seg[:, 0].contiguous(),
        "cache_ratio": torch.full((B,), CACHE_RATIO, dtype=torch.float64),
        "keep_counts": keep.unsqueeze(0).repeat(B, 1),
        "step_active": torch.ones(B, steps, dtype=torch.int64),
        "seg_uniforms": uniforms_seg, "remask_noise": remask_noise,
    }
    d = {k: v.to(device) for k, v in d.items()}
    d["L"], d["N"], d["R"], d["B"] = L, N, R, B
    d["row_lengths"] = [len(r) for r in rows[:2]]
    return d


DENOISE_ORDER = ["input_ids", "position_ids", "attention_mask", "target_positions", "guidance_weights", "vocab_range",
                 "temperature", "uniforms"]


def denoise_args(x):
    return [x[k] for k in DENOISE_ORDER]


def segment_args(x, only_first_step=False):
    """SegmentGraph inputs in export.SEGMENT_IN order. only_first_step: step_active [1, 0, ...] and cache_ratio 1,
    what the runner passes for a sequence on a step without cache (docs/model-interface.md 4.6)."""
    d = dict(x)
    d["uniforms"] = x["seg_uniforms"]
    if only_first_step:
        d["step_active"] = torch.zeros_like(x["step_active"])
        d["step_active"][:, 0] = 1
        d["cache_ratio"] = torch.ones_like(x["cache_ratio"])
    return [d[k] for k in export_mod.SEGMENT_IN]


def denoise_graph(lm):
    return export_mod.DenoiseGraph(lm)


# ---------------------------------------------------------------------------------------------------------------
# precision modes

def mode_list(dtype_name, fallback):
    dt = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype_name]
    modes = [dict(name=dtype_name, param_dtype=dt, autocast=None)]
    if dt != torch.float32:
        if fallback == "autocast":
            modes.append(dict(name=f"{dtype_name} weights + torch.autocast({dtype_name})", param_dtype=dt,
                              autocast=dt))
        if fallback in ("autocast", "fp32"):
            modes.append(dict(name="fp32", param_dtype=torch.float32, autocast=None))
    return modes


@contextlib.contextmanager
def run_context(mode, device, device_ctx):
    with contextlib.ExitStack() as st:
        st.enter_context(torch.inference_mode())
        if mode["autocast"] is not None:
            st.enter_context(torch.autocast(device_type=device.type, dtype=mode["autocast"]))
        if device_ctx:
            st.enter_context(torch.device(device))
        yield


def cast_params(lm, dtype):
    """Parameters only, one at a time (low peak); the float32 buffer inv_freq stays float32 (Module.to(dtype) would
    round it to the low-precision dtype too)."""
    for p in lm.parameters():
        if p.dtype != dtype:
            p.data = p.data.to(dtype)
    return lm


def dtype_name(dt):
    return str(dt).replace("torch.", "")


def flatten(x):
    """full_step's cache output, whatever its layout (one stacked tensor or per-layer (K, V) pairs) -> tensor list."""
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for item in x for t in flatten(item)]


def where_failed(exc):
    """'file:line `source`' of the innermost frame in tools/model (else the innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if os.path.normpath(os.path.dirname(f.filename)) == MODEL_DIR]
    f = (ours or frames or [None])[-1]
    if f is None:
        return "?"
    return f"{os.path.relpath(f.filename, REPO_ROOT)}:{f.lineno} `{(f.line or '').strip()}`"


def is_oom(exc):
    oom_t = getattr(torch.cuda, "OutOfMemoryError", None)
    text = str(exc)
    return ((oom_t is not None and isinstance(exc, oom_t)) or "out of memory" in text.lower()
            or "ALLOC_FAILED" in text)


def probe(modes, device, steps, log):
    """Runs DenoiseGraph and SegmentGraph on a tiny model of the same layout on the device in each mode, in order,
    until one works. -> (mode, device_ctx, findings, dtypes seen)."""
    findings = []
    spec = QUICK
    for mode in modes:
        torch.manual_seed(0)
        cfg = Config(spec["vocab"], d_model=64, n_layers=2, n_heads=4, ffn_hidden=128, rope_theta=spec["rope_theta"])
        lm = cast_params(DimooLM(cfg).to(device).eval(), mode["param_dtype"])
        x = build_inputs(spec, 2, 4, 6, 4, steps, device)
        try:
            with run_context(mode, device, False):
                denoise_graph(lm)(*denoise_args(x))
                logits, present = lm.full_step(x["input_ids"], x["position_ids"], x["attention_mask"],
                                               x["vocab_range"])
            kv = flatten(present)
            seen = {"logits": dtype_name(logits.dtype), "present_key": dtype_name(kv[0].dtype),
                    "present_value": dtype_name(kv[-1].dtype)}
        except Exception as e:  # noqa: BLE001
            msg = f"{mode['name']}: the full step fails at {where_failed(e)}: {type(e).__name__}: {str(e).splitlines()[0]}"
            findings.append(msg)
            log("probe  " + msg)
            continue
        device_ctx = False
        seg = export_mod.SegmentGraph(lm, steps, spec["ids"]["mask"])
        try:
            with run_context(mode, device, False):
                seg(*segment_args(x))
        except Exception as e:  # noqa: BLE001
            msg = (f"{mode['name']}: SegmentGraph fails at {where_failed(e)}: {type(e).__name__}: "
                   f"{str(e).splitlines()[0]}")
            findings.append(msg)
            log("probe  " + msg)
            if device.type != "cpu" and hasattr(torch.device, "__enter__"):
                try:
                    with run_context(mode, device, True):
                        seg(*segment_args(x))
                    device_ctx = True
                    note = ("SegmentGraph runs when its constants (torch.tensor(...) inside the graph) are created "
                            "on the device: the graphs are called under `with torch.device(device)`")
                    findings.append(note)
                    log("probe  " + note)
                except Exception as e2:  # noqa: BLE001
                    msg = (f"{mode['name']}: SegmentGraph also fails under torch.device(): {where_failed(e2)}: "
                           f"{type(e2).__name__}: {str(e2).splitlines()[0]}")
                    findings.append(msg)
                    log("probe  " + msg)
                    continue
            else:
                continue
        log(f"probe  {mode['name']}: denoise and segment graphs run (tiny model); dtypes {seen}")
        return mode, device_ctx, findings, seen
    return None, False, findings, {}


# ---------------------------------------------------------------------------------------------------------------
# model

def build_model(spec, layers, mode, device, log):
    cfg = Config(spec["vocab"], d_model=spec["d_model"], n_layers=layers, n_heads=spec["n_heads"],
                 ffn_hidden=spec["ffn_hidden"], rope_theta=spec["rope_theta"], eps=spec["eps"])
    t0 = time.perf_counter()
    torch.manual_seed(0)
    if device.type == "cuda" and hasattr(torch.device, "__enter__"):
        with torch.device(device):  # parameters are created and initialised (normal_) on the GPU
            lm = DimooLM(cfg)
    else:
        if device.type == "cuda":
            log("note   this torch cannot construct modules on the device: initialising on the CPU (slow)")
        lm = DimooLM(cfg).to(device)
    cast_params(lm.eval(), mode["param_dtype"])
    for p in lm.parameters():
        p.requires_grad_(False)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
    n = sum(p.numel() for p in lm.parameters())
    return lm, cfg, n, time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------------------
# timing

def gb(nbytes):
    return None if nbytes is None else round(nbytes / 1e9, 2)


def timed(fn, device, warmup, repeats, deadline, log):
    """-> (list of ms, note). Warmup calls first; the timed repeats stop early (min 1) past `deadline`."""
    note = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        out = fn()
        del out
        if device.type == "cuda":
            torch.cuda.synchronize()
        one = time.perf_counter() - t0
        if time.perf_counter() + one > deadline:
            repeats = 1
            note = "time budget: 1 timed repeat"
    times = []
    for i in range(repeats):
        if device.type == "cuda":
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            out = fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        else:
            t0 = time.perf_counter()
            out = fn()
            times.append((time.perf_counter() - t0) * 1000.0)
        del out
        if i + 1 < repeats and time.perf_counter() + times[-1] / 1000.0 > deadline:
            note = f"time budget: {i + 1} timed repeat(s)"
            break
    return times, note


class Bench:
    def __init__(self, args, log):
        self.args = args
        self.log = log
        self.cases = []

    def run_case(self, kind, B, fn, x, deadline, predicted_s=None):
        """One case: reset the peak, warm up, time; OOM and other errors are reported, not raised."""
        a, dev = self.args, self.device
        case = {"case": kind, "B": B, "R": x["R"], "L": x["L"], "N": x["N"]}
        now = time.perf_counter()
        if now > deadline:
            case.update(status="skipped", note="past --time-budget-s")
        elif predicted_s is not None and now + predicted_s > deadline:
            case.update(status="skipped", note=f"its predicted {predicted_s:.1f} s would pass --time-budget-s")
        if case.get("status") == "skipped":
            self.cases.append(case)
            return case
        if dev.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        try:
            with run_context(self.mode, dev, self.device_ctx):
                times, note = timed(fn, dev, a.warmup, a.repeats, deadline, self.log)
            med = statistics.median(times)
            case.update(status="ok", ms=round(med, 3), ms_all=[round(t, 3) for t in times])
            if note:
                case["note"] = note
        except Exception as e:  # noqa: BLE001
            if is_oom(e):
                case.update(status="oom", note=str(e).splitlines()[0][:300])
            else:
                case.update(status="error", note=f"{where_failed(e)}: {type(e).__name__}: {str(e).splitlines()[0]}"[:400])
                if a.verbose:
                    traceback.print_exc()
        finally:
            if dev.type == "cuda":
                torch.cuda.synchronize()
                case["peak_gb"] = gb(torch.cuda.max_memory_allocated(dev))
                case["peak_above_weights_gb"] = gb(torch.cuda.max_memory_allocated(dev) - base)
                gc.collect()
                torch.cuda.empty_cache()
        self.cases.append(case)
        return case


# ---------------------------------------------------------------------------------------------------------------

def job_schedule(total_steps, warmup_ratio, refresh):
    """libs/diffusion/src/cache-policy.ts isFullStep: step s is full when s <= w or (s - w) % refresh == 0,
    w = floor(total * warmup_ratio). -> run lengths (a run = a full step + the partial steps up to the next one)."""
    w = math.floor(total_steps * warmup_ratio)
    full = [s for s in range(total_steps) if s <= w or (s - w) % refresh == 0]
    return [(full[i + 1] if i + 1 < len(full) else total_steps) - s for i, s in enumerate(full)]


def fmt_case(c, extra=""):
    head = f"{c['case']:<9} B={c['B']:<2} R={c['R']:<3} L={c['L']} N={c['N']}"
    mem = f"  peak {c['peak_gb']:.1f} GB" if c.get("peak_gb") is not None else ""
    if c["status"] == "ok":
        ts = c["ms_all"]
        spread = f" (min {min(ts):.1f}, max {max(ts):.1f}, n={len(ts)})"
        return f"{head}  {c['ms']:9.1f} ms{spread}{extra}{mem}" + (f"  [{c['note']}]" if c.get("note") else "")
    return f"{head}  {c['status'].upper()}: {c.get('note', '')}{mem}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=None, help="transformer layers (default 32; --quick: 2)")
    ap.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    ap.add_argument("--fallback", choices=["autocast", "fp32", "none"], default="autocast",
                    help="when model.py fails in --dtype: run its weights under torch.autocast (then fp32), go "
                         "straight to fp32, or stop (default autocast)")
    ap.add_argument("--tf32", choices=["on", "off"], default="on",
                    help="float32 matmuls on TF32 tensor cores (as onnxruntime's CUDA provider does by default)")
    ap.add_argument("--batches", default="1,2,4,8", help="sequences per call (R = 2B rows)")
    ap.add_argument("--size", type=int, default=None, help="image side in pixels, a multiple of 16 (default 1024; "
                                                           "--quick: 128)")
    ap.add_argument("--prompt-tokens", type=int, default=None, help="conditional row's prompt length (default 100; "
                                                                    "--quick 20); the unconditional row's is 2/3 of it")
    ap.add_argument("--segment-steps", type=int, default=5, help="T of the segment graph (refreshInterval)")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--time-budget-s", type=float, default=180.0,
                    help="cases that would start (or are predicted to end) past this many seconds after start are "
                         "skipped (default 180)")
    ap.add_argument("--quick", action="store_true", help="tiny dims (d 128, 4 heads, 2 layers, vocabulary 336, "
                                                         "128 px); CPU when there is no CUDA")
    ap.add_argument("--device", default=None, help="default cuda if available (required without --quick)")
    ap.add_argument("--json", default=None, help="write the report as JSON to this path")
    ap.add_argument("--verbose", action="store_true", help="print tracebacks of failed cases")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    deadline = t_start + args.time_budget_s
    lines = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    spec = QUICK if args.quick else REAL
    layers = args.layers or (2 if args.quick else 32)
    size = args.size or (128 if args.quick else 1024)
    if size % 16:
        ap.error("--size must be a multiple of 16")
    grid = size // 16
    prompt = args.prompt_tokens or (20 if args.quick else 100)
    uncond = max(1, (2 * prompt) // 3)
    T = args.segment_steps
    if T < 2:
        ap.error("--segment-steps must be at least 2 (a full step and a partial step)")
    batches = sorted({int(b) for b in args.batches.split(",") if b.strip()})
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda" and not args.quick:
        log("no CUDA device: the full-size model is for a GPU (use --quick for a CPU smoke test)")
        return 2
    if device.type == "cuda":
        try:  # float32 matmuls only (the bf16/fp16 modes are not affected)
            torch.set_float32_matmul_precision("high" if args.tf32 == "on" else "highest")
        except Exception as e:  # noqa: BLE001
            IMPORT_NOTES.append(f"could not set the float32 matmul precision: {e}")
    else:
        torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    report = {"tool": "tools/bench/gpu_engine.py", "argv": sys.argv[1:] if argv is None else list(argv),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": platform.python_version(),
              "torch": torch.__version__, "cuda": torch.version.cuda, "device": str(device), "notes": list(IMPORT_NOTES)}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        report["device_name"] = p.name
        report["device_memory_gb"] = gb(p.total_memory)
        report["capability"] = f"{p.major}.{p.minor}"
    else:
        report["device_name"] = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"

    def dump():
        if args.json:
            report["cases"] = bench.cases
            report["report_lines"] = lines
            report["elapsed_s"] = round(time.perf_counter() - t_start, 1)
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
                f.write("\n")

    bench = Bench(args, log)
    log(f"gpu_engine: {report['device_name']}"
        + (f" ({report['device_memory_gb']:.1f} GB, sm {report['capability']})" if device.type == "cuda" else "")
        + f"  torch {torch.__version__}  cuda {torch.version.cuda}  python {platform.python_version()}")
    for n in IMPORT_NOTES:
        log("note   " + n)

    # -- precision probe on a tiny model (seconds)
    mode, device_ctx, findings, seen = probe(mode_list(args.dtype, args.fallback), device, T, log)
    report["dtype_requested"] = args.dtype
    report["dtype_findings"] = findings
    report["dtypes_seen"] = seen
    if mode is None:
        log(f"no precision mode works on {device} (see above); nothing measured")
        dump()
        return 1
    report["mode"] = mode["name"]
    report["device_ctx"] = device_ctx
    if mode["name"] != args.dtype:
        log(f"note   {args.dtype} as requested does not run through model.py; measuring in: {mode['name']}")
        if seen.get("present_key") != seen.get("present_value"):
            d = (f"in the working mode K leaves each layer as {seen.get('present_key')} but V as "
                 f"{seen.get('present_value')}: RoPE (model.py rope_cos_sin/rope) multiplies q and k by float32 cos/sin, "
                 "which promotes them (and the attention scores/probabilities) to float32; the probabilities then meet "
                 f"the {args.dtype} V in matmul, which does not promote")
            findings.append("diagnosis: " + d)
            log("note   " + d)
    if mode["param_dtype"] == torch.float32 and device.type == "cuda":
        log(f"note   float32 matmuls with TF32 {args.tf32}")
        report["tf32"] = args.tf32

    # -- the model
    try:
        lm, cfg, n_params, t_build = build_model(spec, layers, mode, device, log)
    except Exception as e:  # noqa: BLE001
        log(f"model build failed: {type(e).__name__}: {str(e).splitlines()[0]}")
        report["notes"].append(f"model build failed: {e}")
        dump()
        return 1
    wbytes = torch.cuda.memory_allocated(device) if device.type == "cuda" else None
    report["model"] = dict(cfg.to_dict(), params=n_params, build_s=round(t_build, 1), weights_gb=gb(wbytes),
                           param_dtype=str(mode["param_dtype"]).replace("torch.", ""))
    log(f"model  {layers} layers, d {cfg.d_model}, {cfg.n_heads} heads, ffn {cfg.ffn_hidden}, vocab {cfg.vocab_size}: "
        f"{n_params / 1e9:.3f} B params ({report['model']['param_dtype']}), built in {t_build:.1f} s"
        + (f", {gb(wbytes):.1f} GB on the device" if wbytes is not None else ""))
    bench.mode, bench.device_ctx, bench.device = mode, device_ctx, device

    xs = {}

    def inputs(B):
        if B not in xs:
            xs.clear()
            xs[B] = build_inputs(spec, B, grid, prompt, uncond, T, device)
        return xs[B]

    x1 = build_inputs(spec, 1, grid, prompt, uncond, T, device)
    L, N = x1["L"], x1["N"]
    vr = [spec["code_offset"], spec["code_offset"] + spec["n_codes"]]
    el = {"float32": 4, "float16": 2, "bfloat16": 2}
    kv_row = cfg.n_layers * L * cfg.d_model * (el.get(seen.get("present_key"), 4) + el.get(seen.get("present_value"), 4))
    report["shape"] = dict(size=size, grid=grid, L=L, N=N, prompt_tokens=prompt, uncond_prompt_tokens=uncond,
                           row_lengths=x1["row_lengths"], vocab_range=vr, G=2, segment_steps=T,
                           guidance=GUIDANCE, temperature=TEMPERATURE, cache_ratio=CACHE_RATIO)
    log(f"shape  {size}x{size} t2i with guidance: grid {grid}x{grid}, rows of {x1['row_lengths'][0]} (cond) / "
        f"{x1['row_lengths'][1]} (uncond) tokens padded to L = {L}, N = {N} targets, vocab_range {vr}, T = {T}")
    # the scores take the keys' dtype (model.py casts the key bias to it)
    score_el = el.get(seen.get("present_key"), 4)
    log(f"mem    per row: attention scores {cfg.n_heads * L * L * score_el / 1e9:.2f} GB "
        f"({seen.get('present_key', 'float32')} [H, L, L], one layer live), K/V of the full step {kv_row / 1e9:.2f} GB "
        f"(K {seen.get('present_key', '?')}, V {seen.get('present_value', '?')})")
    report["per_row_gb"] = dict(attention_scores=gb(cfg.n_heads * L * L * score_el), kv=gb(kv_row))
    log("")
    dump()

    # -- a. full steps
    den = denoise_graph(lm)
    full = {}
    oom_at = None
    ms1 = None
    for B in batches:
        if oom_at is not None:
            c = {"case": "full", "B": B, "R": 2 * B, "L": L, "N": N, "status": "skipped",
                 "note": f"B={oom_at} ran out of memory"}
            bench.cases.append(c)
            log(fmt_case(c))
            continue
        x = inputs(B)
        pred = None if ms1 is None else ms1 / 1000.0 * B * (args.warmup + args.repeats)
        da = denoise_args(x)
        c = bench.run_case("full", B, lambda: den(*da), x, deadline, pred)
        if c["status"] == "ok":
            full[B] = c
            if ms1 is None and B == batches[0]:
                ms1 = c["ms"] / B
            c["images_per_s_64"] = round(1000.0 * B / (64 * c["ms"]), 4)
            base = full.get(batches[0])
            c["gain_vs_first"] = round(c["images_per_s_64"] / base["images_per_s_64"], 3) if base else None
            log(fmt_case(c, f"  {c['images_per_s_64']:.4f} img/s (64 steps)  x{c['gain_vs_first']:.2f}"))
        else:
            if c["status"] == "oom":
                oom_at = B
            log(fmt_case(c))
        dump()

    # -- b. segment graph (ML-Cache) at the first and the largest batch that ran
    seg_res = {}
    if full:
        seg = export_mod.SegmentGraph(lm, T, spec["ids"]["mask"])
        fitted = sorted(full)
        want = [fitted[0]] + ([fitted[-1]] if fitted[-1] != fitted[0] else [])
        for B in want:
            candidates = [B] if B == fitted[0] else [b for b in reversed(fitted) if b > fitted[0]]
            for Bc in candidates:
                x = inputs(Bc)
                fms = full[Bc]["ms"]
                sa, sa1 = segment_args(x), segment_args(x, only_first_step=True)
                c = bench.run_case(f"segment{T}", Bc, lambda: seg(*sa), x, deadline,
                                   fms / 1000.0 * (1 + 0.3 * (T - 1)) * (args.warmup + args.repeats))
                if c["status"] == "ok":
                    c["vs_T_full"] = round(c["ms"] / (T * fms), 4)
                    c["partial_step_ms"] = round((c["ms"] - fms) / (T - 1), 3) if T > 1 else None
                    log(fmt_case(c, f"  = {c['vs_T_full']:.3f} x {T} full steps ({T * fms:.1f} ms); "
                                    f"~{c['partial_step_ms']:.1f} ms/partial step"))
                else:
                    log(fmt_case(c))
                c1 = None
                if c["status"] != "oom":
                    c1 = bench.run_case("segment1", Bc, lambda: seg(*sa1), x,
                                        deadline, fms / 1000.0 * 1.5 * (args.warmup + args.repeats))
                    if c1["status"] == "ok":
                        c1["vs_full"] = round(c1["ms"] / fms, 4)
                        log(fmt_case(c1, f"  = {c1['vs_full']:.3f} x one full step (1 active step, cache_ratio 1)"))
                    else:
                        log(fmt_case(c1))
                dump()
                if c["status"] == "ok":
                    seg_res[Bc] = (c, c1 if c1 and c1["status"] == "ok" else None)
                    break
                if c["status"] != "oom":
                    break

    # -- summary
    log("")
    log(f"summary ({report['device_name']}, {mode['name']}, {layers} layers, L = {L}, N = {N}; all figures from "
        "this run)")
    summary = {}
    if full:
        b0 = min(full)
        for B in sorted(full):
            log(f"  full step B={B}: {full[B]['ms']:.1f} ms, {full[B]['images_per_s_64']:.4f} images/s at 64 steps, "
                f"x{full[B]['gain_vs_first']:.2f} vs B={b0}"
                + (f", peak {full[B]['peak_gb']:.1f} GB" if full[B].get("peak_gb") is not None else ""))
        summary["full_ms"] = {str(B): full[B]["ms"] for B in sorted(full)}
        summary["images_per_s_64"] = {str(B): full[B]["images_per_s_64"] for B in sorted(full)}
        summary["batch_gain"] = {str(B): full[B]["gain_vs_first"] for B in sorted(full)}
        summary["largest_batch_that_fit"] = max(full)
        if oom_at is not None:
            log(f"  B={oom_at} ran out of device memory (full step)")
            summary["oom_batch"] = oom_at
    runs = job_schedule(64, WARMUP_RATIO, T)
    n_seg = sum(1 for r in runs if r > 1)
    n_single = len(runs) - n_seg
    summary["schedule_64"] = dict(warmup_ratio=WARMUP_RATIO, refresh=T, runs=len(runs), full_only_runs=n_single,
                                  segment_runs=n_seg, runs_longer_than_T=sum(1 for r in runs if r > T))
    for B, (c, c1) in sorted(seg_res.items()):
        fms = full[B]["ms"]
        log(f"  ML-Cache B={B}: segment of {T} steps {c['ms']:.1f} ms = {c['vs_T_full']:.3f} x {T} full steps "
            f"(speedup x{1 / c['vs_T_full']:.2f}); a partial step ~{c['partial_step_ms']:.1f} ms = "
            f"{c['partial_step_ms'] / fms:.3f} of a full step")
        job_nc = 64 * fms
        job_c = n_single * fms + n_seg * c["ms"]
        row = {"segment_ms": c["ms"], "vs_T_full": c["vs_T_full"], "partial_step_ms": c["partial_step_ms"],
               "job64_no_cache_ms": round(job_nc, 1), "job64_cache_ms": round(job_c, 1),
               "job64_speedup": round(job_nc / job_c, 3)}
        msg = (f"  64-step job B={B} (warmup {WARMUP_RATIO}, refresh {T}: {n_single} full-step runs + {n_seg} "
               f"segments): no cache {job_nc / 1000:.1f} s, ML-Cache {job_c / 1000:.1f} s (x{job_nc / job_c:.2f})")
        if c1 is not None:
            row["segment1_vs_full"] = c1["vs_full"]
            job_c1 = n_single * c1["ms"] + n_seg * c["ms"]
            row["job64_cache_segment_only_ms"] = round(job_c1, 1)
            msg += f"; {job_c1 / 1000:.1f} s if the full-step runs also go through the segment graph"
        log(msg)
        summary.setdefault("ml_cache", {})[str(B)] = row
    if findings:
        log("  precision: " + " | ".join(findings))
    report["summary"] = summary
    skipped = [c for c in bench.cases if c["status"] == "skipped" and "budget" in c.get("note", "")]
    if skipped:
        log(f"  {len(skipped)} case(s) skipped by --time-budget-s {args.time_budget_s:.0f}")
    log(f"  elapsed {time.perf_counter() - t_start:.1f} s")
    dump()
    if args.json:
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
