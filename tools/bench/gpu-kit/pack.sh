#!/usr/bin/env bash
# npm run gpu-kit:pack — builds the GPU device kit: .gpu-kit/kit/kit.tar.xz, the one ignored path a device `run` call
# carries (see README.md here). Inside: node (this machine's Node 20 binary), the linux-x64 onnxruntime-node files,
# the bench bundle (tools/bench/src/device.bench.ts → device-bench.cjs), the Vulkan loader and glvnd libraries and
# vulkaninfo from Debian bookworm packages (unpacked here, .so files only), and the weightless real-width graphs
# (2 and 4 layers, fp16 weights; tools/bench/gpu-kit/export_graphs.py, run once and kept in .gpu-kit/graphs).
#
# Env: KIT_LAYERS (default 2,4), KIT_FUSED=1 (also the fused-attention sets L<n>f: export_graphs.py --fused-attention),
# KIT_REEXPORT=1 (export the graphs again), KIT_XZ_LEVEL (default 9).
# Needs: node_modules (esbuild, onnxruntime-node), /usr/bin/python3 with torch + onnx (first export only), apt-get,
# dpkg-deb, xz. Prints the kit's size and what would travel with a device call (the working tree + the kit).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$ROOT"
G="$ROOT/.gpu-kit"
STAGE="$G/stage"
LAYERS="${KIT_LAYERS-2,4}"
LIMIT=$((64 * 1024 * 1024))
mkdir -p "$G/kit" "$G/debs"
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/tools-lib" "$STAGE/node_modules" "$STAGE/graphs"

step() { printf '\n== %s\n' "$*"; }

step "node $(node --version) from $(node -p process.execPath)"
cp "$(node -p process.execPath)" "$STAGE/bin/node"

step "onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version") (linux/x64 only)"
ORT="$ROOT/node_modules/onnxruntime-node"
# the onnxruntime-common that onnxruntime-node resolves (its own node_modules first); its exports hide package.json
COMMON="$ORT/node_modules/onnxruntime-common"
[ -d "$COMMON" ] || COMMON="$ROOT/node_modules/onnxruntime-common"
mkdir -p "$STAGE/node_modules/onnxruntime-node/bin/napi-v6/linux" "$STAGE/node_modules/onnxruntime-common"
cp "$ORT/package.json" "$STAGE/node_modules/onnxruntime-node/"
cp -r "$ORT/dist" "$STAGE/node_modules/onnxruntime-node/"
cp -r "$ORT/bin/napi-v6/linux/x64" "$STAGE/node_modules/onnxruntime-node/bin/napi-v6/linux/"
cp "$COMMON/package.json" "$STAGE/node_modules/onnxruntime-common/"
cp -r "$COMMON/dist" "$STAGE/node_modules/onnxruntime-common/"
find "$STAGE/node_modules" -name '*.map' -delete

step "bench bundle (esbuild)"
npx --no-install esbuild tools/bench/src/device.bench.ts --bundle --platform=node --target=node20 --format=cjs \
  --external:onnxruntime-node --alias:sharp=./tools/bench/src/device-sharp-stub.ts --tsconfig=tools/bench/tsconfig.json \
  --log-level=warning \
  --outfile="$STAGE/device-bench.cjs"
ls -la "$STAGE/device-bench.cjs"

step "Vulkan loader, glvnd, vulkaninfo (Debian $(. /etc/os-release && echo "$VERSION_CODENAME"), apt-get download)"
# the loader and glvnd libraries for node (the NVIDIA ICD, libGLX_nvidia, needs libGLdispatch); vulkaninfo's own X11 /
# wayland dependencies go to tools-lib, used for vulkaninfo alone
PKGS=(libvulkan1 libegl1 libglvnd0 libgl1 libglx0 libopengl0 libgles2)
TOOL_PKGS=(vulkan-tools libwayland-client0 libxcb1 libx11-6 libxau6 libxdmcp6 libbsd0 libmd0 libffi8)
(cd "$G/debs" && for p in "${PKGS[@]}" "${TOOL_PKGS[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download -q "$p"; done)
X="$G/debroot"
rm -rf "$X"
mkdir -p "$X/lib" "$X/tool"
for p in "${PKGS[@]}"; do dpkg-deb -x "$G/debs/${p}"_*.deb "$X/lib"; done
for p in "${TOOL_PKGS[@]}"; do dpkg-deb -x "$G/debs/${p}"_*.deb "$X/tool"; done
cp -a "$X"/lib/usr/lib/x86_64-linux-gnu/*.so* "$STAGE/lib/"
cp -a "$X"/tool/usr/lib/x86_64-linux-gnu/*.so* "$X"/tool/lib/x86_64-linux-gnu/*.so* "$STAGE/tools-lib/" 2>/dev/null || true
cp "$X/tool/usr/bin/vulkaninfo" "$STAGE/bin/"
(cd "$G/debs" && ls -1 ./*.deb) > "$STAGE/debs.txt"

step "weightless real-width graphs (layers $LAYERS)"
IFS=',' read -ra LS <<<"$LAYERS"
VARIANTS=("")
[ "${KIT_FUSED:-0}" = 1 ] && VARIANTS+=("f")
for v in "${VARIANTS[@]}"; do
  for n in "${LS[@]}"; do
    if [ "${KIT_REEXPORT:-0}" = 1 ] || [ ! -f "$G/graphs/L$n$v/manifest.json" ]; then
      /usr/bin/python3 tools/bench/gpu-kit/export_graphs.py --out "$G/graphs" --layers "$n" ${v:+--fused-attention}
    fi
    mkdir -p "$STAGE/graphs/L$n$v"
    find "$G/graphs/L$n$v" -maxdepth 1 -type f ! -name 'weights.bin' -exec cp {} "$STAGE/graphs/L$n$v/" \;
  done
done

step "archive"
{
  echo "built $(date -u +%FT%TZ) on $(uname -srm) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "node $(node --version); onnxruntime-node $(node -p "require('onnxruntime-node/package.json').version")"
  (cd "$STAGE" && find . -type f ! -name MANIFEST.txt -printf '%10s %p\n' | sort -k2)
} >"$STAGE/MANIFEST.txt"
rm -f "$G/kit/kit.tar.xz"
tar -C "$STAGE" -cf - . | xz -"${KIT_XZ_LEVEL:-9}" -T2 >"$G/kit/kit.tar.xz"
KIT=$(stat -c %s "$G/kit/kit.tar.xz")
RAW=$(du -sb "$STAGE" | cut -f1)
TREE=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 stat -c %s 2>/dev/null || true) | awk '{s+=$1} END {print s+0}')
printf '\nkit: %s (%.1f MiB; %.1f MiB unpacked)\n' "$G/kit/kit.tar.xz" "$(echo "$KIT / 1048576" | bc -l)" "$(echo "$RAW / 1048576" | bc -l)"
printf 'working tree that travels: %.1f MiB; with the kit: %.1f MiB of the 64 MiB a device call carries\n' \
  "$(echo "$TREE / 1048576" | bc -l)" "$(echo "($TREE + $KIT) / 1048576" | bc -l)"
if [ "$KIT" -gt "$LIMIT" ] || [ $((TREE + KIT)) -gt "$LIMIT" ]; then
  echo "TOO LARGE for one device call" >&2
  exit 1
fi
echo "device call: run(command='bash tools/bench/gpu-kit/device.sh', carry=['.gpu-kit/kit'], timeout_s=600)"
