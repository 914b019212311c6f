// Which backend new tensors are created on, and why. Native is the default when its addon
// loads; MOEKIT_BACKEND=reference|native|webgpu overrides the choice. WebGPU opens
// asynchronously: `await initBackend()` first (the CLI does), then it is chosen like the others.
import { readEnv, validateNativeEnv } from '../env.js';
import type { Backend } from './backend.js';
import { createNativeBackend } from './native/backend.js';
import { referenceBackend } from './reference/index.js';
import { openWebGPUBackend, type WebGPUOpen } from './webgpu/index.js';

export type BackendName = 'native' | 'reference' | 'webgpu';

export interface BackendInfo {
  name: BackendName;
  /** One line saying which backend runs and why. */
  reason: string;
}

let current: { backend: Backend; info: BackendInfo } | null = null;
let native: ReturnType<typeof createNativeBackend> | null = null;
let webgpu: WebGPUOpen | null = null;

/** Open the asynchronous backends that may be chosen (webgpu when MOEKIT_BACKEND=webgpu or asked for). */
export async function initBackend(open: 'webgpu' | null = null): Promise<void> {
  if (open === 'webgpu' || readEnv('MOEKIT_BACKEND') === 'webgpu') webgpu = await openWebGPUBackend();
}

/** The webgpu backend as initBackend opened it (or why there is none). */
function loadWebGPU(why: string): { backend: Backend; info: BackendInfo } {
  if (!webgpu) throw new Error(`${why}: WebGPU opens asynchronously; call \`await initBackend('webgpu')\` first`);
  if (!webgpu.backend) throw new Error(`${why} but no WebGPU device opens: ${webgpu.reason}`);
  return { backend: webgpu.backend, info: { name: 'webgpu', reason: `moekit: webgpu backend, ${webgpu.description} (${why})` } };
}

function loadNative(): ReturnType<typeof createNativeBackend> {
  validateNativeEnv(); // MOEKIT_NUM_THREADS=abc fails here with one line, not ignored by getenv
  native ??= createNativeBackend();
  return native;
}

function choose(): { backend: Backend; info: BackendInfo } {
  const env = readEnv('MOEKIT_BACKEND'); // validated: 'native', 'reference', 'webgpu' or unset
  if (env === 'webgpu') return loadWebGPU('MOEKIT_BACKEND=webgpu');
  if (env === 'reference') {
    return { backend: referenceBackend, info: { name: 'reference', reason: 'moekit: reference backend (MOEKIT_BACKEND=reference)' } };
  }
  const n = loadNative();
  if (n.backend) {
    const why = env === 'native' ? 'MOEKIT_BACKEND=native' : 'the native addon loaded';
    return { backend: n.backend, info: { name: 'native', reason: `moekit: native backend, ${n.description} (${why})` } };
  }
  if (env === 'native') throw new Error(`MOEKIT_BACKEND=native but the native addon cannot load: ${n.reason}`);
  return {
    backend: referenceBackend,
    info: { name: 'reference', reason: `moekit: reference backend (the native addon cannot load: ${n.reason})` },
  };
}

/** The backend new tensors are created on. */
export function getBackend(): Backend {
  current ??= choose();
  return current.backend;
}

/** Which backend runs and why, in one line (the CLI prints it). */
export function backendInfo(): BackendInfo {
  current ??= choose();
  return current.info;
}

/** Switch the default backend (tests run the same suite on both). */
export function setBackend(name: BackendName): Backend {
  if (name === 'reference') {
    current = { backend: referenceBackend, info: { name, reason: 'moekit: reference backend (setBackend)' } };
  } else if (name === 'native') {
    const n = loadNative();
    if (!n.backend) throw new Error(`setBackend('native'): the native addon cannot load: ${n.reason}`);
    current = { backend: n.backend, info: { name, reason: `moekit: native backend, ${n.description} (setBackend)` } };
  } else if (name === 'webgpu') {
    current = loadWebGPU("setBackend('webgpu')");
  } else {
    throw new Error(`setBackend: name must be 'native', 'reference' or 'webgpu' (got '${String(name)}')`);
  }
  return current.backend;
}

/** Names of the CPU backends that can run here (the suites that read synchronously run on each). */
export function availableBackends(): BackendName[] {
  return loadNative().backend ? ['native', 'reference'] : ['reference'];
}
