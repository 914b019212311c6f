// Opening the webgpu backend (asynchronous: adapter and device requests). The registry calls
// this once from initBackend(); tests and the browser example call it directly.
import type { Backend } from '../backend.js';
import { createWebGPUBackend } from './backend.js';
import { openDevice } from './device.js';
import { GpuRuntime } from './runtime.js';

export type WebGPUOpen = { backend: Backend; description: string; limits: Record<string, number> } | { backend: null; reason: string };

let opening: Promise<WebGPUOpen> | null = null;

/** The webgpu backend on this machine's adapter, or why there is none (opened once). */
export function openWebGPUBackend(): Promise<WebGPUOpen> {
  opening ??= openDevice().then((r) =>
    r.ok
      ? { backend: createWebGPUBackend(new GpuRuntime(r.opened.device)), description: r.opened.description, limits: r.opened.limits }
      : { backend: null, reason: r.reason },
  );
  return opening;
}
