#!/usr/bin/env bash
# Build the carry folder .devbench/ for bench/device/h100.sh, here, before a session's device run:
# the accelerator machine has CUDA, PyTorch and Vulkan but no Node, no npm and no network.
#
#   bash bench/device/prepare.sh [peer_dir]     # peer_dir: default ../shared/peers/torch-moe
#
# .devbench/ (ignored by .gitignore, about 35 MB) holds:
#   bench.mjs         bench/main.ts bundled by esbuild (the webgpu package stays external)
#   node.xz           this machine's Node binary (x86-64, glibc), xz-compressed
#   node_modules/webgpu/ {index.js, package.json} + dawn.node.xz (Dawn, unpacked by h100.sh)
#   peer_gpu.py       the PyTorch peer (bench/peer_gpu.py)
#   torch-moe/moe_ref.py  the peer's MoE layer (copied read-only from peer_dir)
# and .gl/ gets the Vulkan / EGL loader packages of the device tool's README (once).
# Then run on the device machine:  carry ['.gl', '.devbench'],  command 'bash bench/device/h100.sh'.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
peer_dir=${1:-$root/../shared/peers/torch-moe}
if [[ ! -f $peer_dir/moe_ref.py ]]; then
  echo "prepare.sh: no moe_ref.py in '$peer_dir' (give the peer's folder: bash bench/device/prepare.sh /work/shared/peers/torch-moe)" >&2
  exit 2
fi
if [[ $(uname -m) != x86_64 ]]; then
  echo "prepare.sh: this machine is $(uname -m); the device machine runs x86-64 binaries only" >&2
  exit 2
fi
pack=.devbench
rm -rf "$pack"
mkdir -p "$pack/node_modules/webgpu/dist/linux-x64" "$pack/torch-moe"
# a require() for the bundled CommonJS packages, which an ES module lacks
npx esbuild bench/main.ts --bundle --platform=node --format=esm --target=node20 --external:webgpu --log-level=warning \
  --banner:js="import { createRequire as __moekitRequire } from 'node:module'; const require = __moekitRequire(import.meta.url);" \
  --outfile="$pack/bench.mjs"
cp bench/peer_gpu.py "$pack/"
cp "$peer_dir/moe_ref.py" "$pack/torch-moe/"
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$pack/node_modules/webgpu/"
xz -T0 -2 -c node_modules/webgpu/dist/linux-x64/dawn.node >"$pack/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
xz -T0 -2 -c "$(command -v node)" >"$pack/node.xz"
node --version >"$pack/node-version"

if ! compgen -G '.gl/*.deb' >/dev/null; then
  # the device tool's README: the loaders, downloaded for amd64 whatever this machine is
  mkdir -p .gl /tmp/amd64/partial
  o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64)
  apt-get "${o[@]}" update
  (cd .gl && apt-get "${o[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh "$pack" .gl
echo "prepare.sh: ready; device run: carry ['.gl', '.devbench'], command 'bash bench/device/h100.sh', timeout_s 540"
