// Which backend new tensors are created on, and why. Native is the default when its addon
// loads; MOEKIT_BACKEND=reference|native overrides the choice.
import { readEnv, validateNativeEnv } from '../env.js';
import type { Backend } from './backend.js';
import { createNativeBackend } from './native/backend.js';
import { referenceBackend } from './reference/index.js';

export type BackendName = 'native' | 'reference';

export interface BackendInfo {
  name: BackendName;
  /** One line saying which backend runs and why. */
  reason: string;
}

let current: { backend: Backend; info: BackendInfo } | null = null;
let native: ReturnType<typeof createNativeBackend> | null = null;

function loadNative(): ReturnType<typeof createNativeBackend> {
  validateNativeEnv(); // MOEKIT_NUM_THREADS=abc fails here with one line, not ignored by getenv
  native ??= createNativeBackend();
  return native;
}

function choose(): { backend: Backend; info: BackendInfo } {
  const env = readEnv('MOEKIT_BACKEND'); // validated: 'native', 'reference' or unset
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
  } else {
    throw new Error(`setBackend: name must be 'native' or 'reference' (got '${String(name)}')`);
  }
  return current.backend;
}

/** Names of the backends that can run here. */
export function availableBackends(): BackendName[] {
  return loadNative().backend ? ['native', 'reference'] : ['reference'];
}
