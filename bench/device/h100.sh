#!/usr/bin/env bash
# One device run for issue 25's benchmark: the webgpu backend on Dawn's Vulkan backend against the
# PyTorch CUDA peer (fp32, TF32 off), on the lent NVIDIA H100 (or H200) machine, under 8 minutes.
#
# Here first:  bash bench/device/prepare.sh /work/shared/peers/torch-moe   (fills .devbench/ and .gl/)
# Check here:  bash bench/device/h100.sh --dry-run    (the same steps on Mesa's software GL, tiny sizes)
# Device run:  run(command='bash bench/device/h100.sh', carry=['.gl', '.devbench'], timeout_s=540)
#
# Writes to $OUT (8 files, the most that come back): device.txt (nvidia-smi, node, Vulkan ICD),
# gemm.jsonl / gemm.log (GEMM 4096^3 fp32, <= 120 s), moe-ct-moe.jsonl / .log and
# moe-mixtral-like.jsonl / .log (the MoE layer fwd and fwd+bwd, <= 150 s each), status.txt
# (each step's exit code). Each step has its own process and timeout, so a hung or failed step
# still leaves the others' results.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
dry=0
case ${1:-} in
  --dry-run) dry=1 ;;
  '') ;;
  *)
    echo "h100.sh: unknown argument '$1' (allowed: --dry-run)" >&2
    exit 2
    ;;
esac
pack=$root/.devbench
if [[ ! -f $pack/bench.mjs || ! -f $pack/node.xz ]]; then
  echo "h100.sh: $pack is not prepared: run 'bash bench/device/prepare.sh' here and carry .devbench" >&2
  exit 2
fi
out=${OUT:-}
if [[ -z $out ]]; then
  out=$(mktemp -d)
  echo "h100.sh: OUT is unset; writing to $out"
fi

unxz_to() { python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"; }
bin=$(mktemp -d)
unxz_to "$pack/node.xz" "$bin/node"
chmod +x "$bin/node"
dawn=$pack/node_modules/webgpu/dist/linux-x64/dawn.node
[[ -f $dawn ]] || unxz_to "$dawn.xz" "$dawn"

if ((dry)); then
  export MOEKIT_WEBGPU_BACKEND=opengl
  peer_python=/usr/bin/python3 # Debian's, with python3-torch (CPU)
  gemm_args=(--shapes 64x64x64)
  moe_configs=(tiny)
else
  # the device tool's README: Vulkan / EGL loaders from .gl, the NVIDIA ICD where the loader misses it
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
  if [[ -f $icd ]]; then export VK_DRIVER_FILES=$icd; fi
  export MOEKIT_WEBGPU_BACKEND=vulkan
  peer_python=python3 # the image's, with PyTorch on CUDA
  gemm_args=()
  moe_configs=(ct-moe mixtral-like)
fi

{
  nvidia-smi -L 2>&1 || echo 'no nvidia-smi'
  echo "node $("$bin/node" --version) (carried), $peer_python $("$peer_python" -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())' 2>&1)"
  echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} MOEKIT_WEBGPU_BACKEND=$MOEKIT_WEBGPU_BACKEND dry_run=$dry"
  ldconfig -p | grep -E 'libvulkan|libEGL' || echo 'no Vulkan / EGL loader in ldconfig'
} >"$out/device.txt" 2>&1

# timeout runs programs, not shell functions: the command line as an array
run_bench=("$bin/node" --expose-gc "$pack/bench.mjs")
common=(--backend webgpu --json --peer-python "$peer_python")
: >"$out/status.txt"
set +e
timeout 120 "${run_bench[@]}" gemm "${common[@]}" "${gemm_args[@]}" >"$out/gemm.jsonl" 2>"$out/gemm.log"
echo "gemm rc=$?" >>"$out/status.txt"
# one process per MoE config: a failure in one (a device limit, say) keeps the other's rows
for cfg in "${moe_configs[@]}"; do
  timeout 150 "${run_bench[@]}" moe "${common[@]}" --peer-dir "$pack/torch-moe" --configs "$cfg" >"$out/moe-$cfg.jsonl" 2>"$out/moe-$cfg.log"
  echo "moe $cfg rc=$?" >>"$out/status.txt"
done
set -e
cat "$out/status.txt" "$out"/*.jsonl
tail -n 5 "$out"/*.log
