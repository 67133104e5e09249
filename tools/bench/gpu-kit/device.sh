#!/usr/bin/env bash
# What ONE device `run` call executes (README.md here):
#   run(command='bash tools/bench/gpu-kit/device.sh', carry=['.gpu-kit/kit'], timeout_s=600)
# Unpacks the kit (node, onnxruntime-node, the bench bundle, the Vulkan loader, the weightless graphs), finds the
# NVIDIA Vulkan ICD, prints the GPU, vulkaninfo and the storage-buffer limits first, then runs, each phase under its
# own time limit and each failure recorded without stopping the script:
#   1. parity   — the tiny model's mixed batch on the CPU provider and on WebGPU (resident cache), tokens compared
#   2. fill     — random fp16 weights for the 2- and 4-layer real-width graphs (local disk, not $OUT)
#   3. steps    — ms per full / partial step and per draw on WebGPU, 2 then 4 layers, per size and batch
#   4. torch    — tools/bench/gpu_engine.py on the same shapes (bf16), 2 and 4 layers
#   5. fit      — a + b·layers from the 2- and 4-layer figures, extrapolated to 32 layers
# Everything lands in $OUT (at most 8 files come back): device.log, parity.json, steps-L2.json, steps-L4.json,
# torch.json, summary.json, nvsmi.csv.
#
# Env overrides (for a dry run on a machine without an NVIDIA GPU, see README.md): OUT, KIT_ARCHIVE, KIT_DIR, WORK_DIR,
# VK_ICD (an ICD json to use), GRAPHS_DIR (graphs instead of the kit's: DIR/L<n>), SIZES, BATCHES, LAYERS, REPEATS,
# T_PARITY, T_STEPS (per layer count), CASE_S, T_TORCH, TORCH_BUDGET_S, TORCH_ARGS (e.g. --quick), PROVIDER,
# VARIANT=f (the fused-attention graph sets L<n>f, packed with KIT_FUSED=1), PYTHON (default python3), SKIP (phases to skip, e.g. "torch parity"), GRAPHS_CHECK=1 (the raw resident graphs of L<first> on the CPU provider
# at a tiny sequence before the steps: the weightless export's proof; slow at the real width), PROMPT.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
T0=$(date +%s)
OUT="${OUT:-$ROOT/.gpu-kit/out}"
mkdir -p "$OUT"
KIT_ARCHIVE="${KIT_ARCHIVE:-$ROOT/.gpu-kit/kit/kit.tar.xz}"
KIT="${KIT_DIR:-/tmp/dimoo-kit}"
WORK="${WORK_DIR:-/tmp/dimoo-work}"
SIZES="${SIZES:-256,512,1024}"
BATCHES="${BATCHES:-1,4,16}"
LAYERS="${LAYERS:-2,4}"
V="${VARIANT:-}"
REPEATS="${REPEATS:-3}"
PROMPT="${PROMPT:-100}"
SKIP="${SKIP:-}"
PY="${PYTHON:-python3}"
exec > >(tee -a "$OUT/device.log") 2>&1

say() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
skip() { case " $SKIP " in *" $1 "*) say "$1: skipped (SKIP)"; return 0 ;; esac; return 1; }
# phase NAME SECONDS CMD...: runs under a time limit; the status is logged, never fatal
phase() {
  local name="$1" limit="$2"
  shift 2
  say "$name (limit ${limit}s): $*"
  timeout -k 10 "$limit" "$@"
  local rc=$?
  if [ $rc -eq 0 ]; then say "$name: ok"; else say "$name: FAILED rc=$rc$([ $rc -eq 124 ] && echo ' (time limit)')"; fi
  echo "$name $rc" >>"$WORK/phases.txt"
  return 0
}

say "unpack $KIT_ARCHIVE -> $KIT"
rm -rf "$KIT" "$WORK"
mkdir -p "$KIT" "$WORK"
: >"$WORK/phases.txt"
if ! tar -C "$KIT" -xJf "$KIT_ARCHIVE"; then
  echo "no kit: carry .gpu-kit/kit (npm run gpu-kit:pack)"
  exit 1
fi
head -2 "$KIT/MANIFEST.txt"
NODE="$KIT/bin/node"
export LD_LIBRARY_PATH="$KIT/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export XDG_RUNTIME_DIR="$WORK/xdg"
mkdir -p -m 700 "$XDG_RUNTIME_DIR"

say "GPU"
nvidia-smi 2>&1 || echo "nvidia-smi: not available"
nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>&1 || true

say "Vulkan ICD"
if [ -z "${VK_ICD:-}" ]; then
  for d in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/nvidia/share/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
    for f in "$d"/nvidia*.json; do [ -f "$f" ] && VK_ICD="$f" && break 2; done
  done
fi
if [ -z "${VK_ICD:-}" ] && { ldconfig -p | grep -q libGLX_nvidia.so.0 || ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 >/dev/null 2>&1; }; then
  # the driver is there without its ICD json: write one (the library NVIDIA's own json names)
  VK_ICD="$WORK/nvidia_icd.json"
  printf '{"file_format_version":"1.0.0","ICD":{"library_path":"libGLX_nvidia.so.0","api_version":"1.3.0"}}\n' >"$VK_ICD"
  echo "no NVIDIA ICD json found; wrote $VK_ICD for libGLX_nvidia.so.0"
fi
if [ -n "${VK_ICD:-}" ]; then
  export VK_DRIVER_FILES="$VK_ICD" VK_ICD_FILENAMES="$VK_ICD"
  echo "ICD: $VK_ICD"
  cat "$VK_ICD"
  for f in /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json; do
    [ -f "$f" ] && export __EGL_VENDOR_LIBRARY_FILENAMES="$f" && break
  done
else
  echo "NO Vulkan ICD for NVIDIA found (/usr/share/vulkan/icd.d, /etc/vulkan/icd.d, /usr/local/nvidia/...): WebGPU will find no adapter; the PyTorch part still runs"
fi
VKI=(env LD_LIBRARY_PATH="$KIT/lib:$KIT/tools-lib${LD_LIBRARY_PATH#"$KIT/lib"}" "$KIT/bin/vulkaninfo")
"${VKI[@]}" --summary 2>&1 | head -60
say "storage-buffer and buffer limits"
"${VKI[@]}" 2>/dev/null | grep -E "maxStorageBufferRange|maxUniformBufferRange|maxMemoryAllocationSize|maxBufferSize|maxComputeWorkGroupInvocations|maxComputeSharedMemorySize|maxPushConstantsSize|shaderFloat16|storageBuffer16BitAccess|deviceName" | sort | uniq -c | head -30
"$NODE" --version
"$NODE" -e "const o=require('$KIT/node_modules/onnxruntime-node');console.log('onnxruntime-node', require('$KIT/node_modules/onnxruntime-node/package.json').version, 'backends ok', typeof o.InferenceSession)" 2>&1

# GPU memory every 200 ms for the whole run (the WebGPU provider has no memory query of its own)
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 200 >"$OUT/nvsmi.csv" 2>/dev/null &
  SMI=$!
fi
mark() { [ -n "${SMI:-}" ] && echo "# $(date +%H:%M:%S.%N | cut -c1-12) $*" >>"$OUT/nvsmi.csv"; }

# the weights are filled in the background while parity runs (local disk)
IFS=',' read -ra LS <<<"$LAYERS"
for n in "${LS[@]}"; do
  cp -r "${GRAPHS_DIR:-$KIT/graphs}/L$n$V" "$WORK/L$n"
  rm -f "$WORK/L$n/weights.bin"
done
if ! skip fill; then
  say "fill (background): $LAYERS layers"
  (for n in "${LS[@]}"; do "$PY" tools/bench/gpu-kit/fill_weights.py "$WORK/L$n" || echo "fill L$n FAILED"; done) >"$WORK/fill.log" 2>&1 &
  FILL=$!
fi

BENCH=("$NODE" "$KIT/device-bench.cjs")
if ! skip parity; then
  mark parity
  phase parity "${T_PARITY:-60}" "${BENCH[@]}" parity --model "$ROOT/models/tiny" --out "$OUT/parity.json"
fi
if [ -n "${FILL:-}" ]; then
  say "waiting for fill"
  wait "$FILL"
  cat "$WORK/fill.log"
fi
if [ "${GRAPHS_CHECK:-0}" = 1 ]; then
  phase graphs "${T_GRAPHS:-300}" "${BENCH[@]}" graphs --model "$WORK/L${LS[0]}" --provider cpu --out "$WORK/graphs.json"
fi
if ! skip steps; then
  for n in "${LS[@]}"; do
    mark "steps L$n"
    phase "steps-L$n" "${T_STEPS:-140}" "${BENCH[@]}" steps --model "$WORK/L$n" --provider "${PROVIDER:-webgpu}" \
      --sizes "$SIZES" --batches "$BATCHES" --repeats "$REPEATS" --prompt "$PROMPT" --case-budget-s "${CASE_S:-25}" \
      --budget-s "$((${T_STEPS:-140} - 15))" --out "$OUT/steps-L$n$V.json"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader 2>/dev/null | sed 's/^/GPU memory after: /'
  done
fi
rm -rf "$WORK"/L*/weights.bin
if ! skip torch; then
  mark torch
  # shellcheck disable=SC2086
  phase torch "${T_TORCH:-130}" "$PY" tools/bench/gpu-kit/torch_steps.py --layers "$LAYERS" --sizes "$SIZES" \
    --batches "$BATCHES" --budget-s "${TORCH_BUDGET_S:-17}" --work "$WORK/torch" --out "$OUT/torch.json" -- \
    --prompt-tokens "$PROMPT" ${TORCH_ARGS:-}
fi
[ -n "${SMI:-}" ] && kill "$SMI" 2>/dev/null
ORTS=()
for n in "${LS[@]}"; do ORTS+=("$OUT/steps-L$n$V.json"); done
phase fit 30 "$PY" tools/bench/gpu-kit/fit.py --ort "${ORTS[@]}" --torch "$OUT/torch.json" --out "$OUT/summary.json"
if [ -s "$OUT/nvsmi.csv" ]; then
  awk -F', ' '!/^#/ && $2+0 > m {m = $2+0} END {print "peak GPU memory used (nvidia-smi, 200 ms samples): " m " MiB"}' "$OUT/nvsmi.csv"
fi
say "phases"
cat "$WORK/phases.txt"
ls -la "$OUT"
say "done in $(($(date +%s) - T0)) s"
sleep 0.5 # let tee write the log's end
