// `--backend` of the gemm and moe benches: the native CPU kernels (default) or the WebGPU device (bench/webgpu.ts).
import { InvalidArgumentError } from 'commander';

const BENCH_BACKENDS = ['native', 'webgpu'] as const;
export type BenchBackend = (typeof BENCH_BACKENDS)[number];

export function parseBenchBackend(value: string): BenchBackend {
  if (!(BENCH_BACKENDS as readonly string[]).includes(value))
    throw new InvalidArgumentError(`'${value}' is not a bench backend (allowed: ${BENCH_BACKENDS.join(', ')})`);
  return value as BenchBackend;
}

export const BACKEND_OPTION_HELP =
  'native (the CPU kernels, default) or webgpu (WGSL kernels on the WebGPU adapter; the PyTorch peer on CUDA when torch has it, else on the CPU)';

export const PEER_PYTHON_OPTION_HELP =
  "with --backend webgpu: the python whose torch runs the peer (default Debian's /usr/bin/python3; the accelerator machine's is python3)";
