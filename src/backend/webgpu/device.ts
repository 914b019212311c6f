// Finding a WebGPU adapter and opening a device: the browser's navigator.gpu, or in Node the
// optional `webgpu` package (Dawn). Asynchronous, so the registry opens it once up front
// (initBackend) and the synchronous Backend calls use the open device afterwards.
/// <reference types="@webgpu/types" />
import { readEnv } from '../../env.js';

/** Limits the kernels need above the compatibility-mode defaults (adapter permitting). */
const WANTED_LIMITS = { maxStorageBuffersPerShaderStage: 8, maxComputeInvocationsPerWorkgroup: 256 } as const;
/** Limits asked for at the adapter's maximum: the default 128 MiB binding holds no Mixtral-sized expert bank. */
const ADAPTER_MAX_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize'] as const;

export interface OpenedDevice {
  device: GPUDevice;
  /** One line: the adapter, where it came from, and its main limits. */
  description: string;
  limits: Record<string, number>;
}

export type DeviceResult = { ok: true; opened: OpenedDevice } | { ok: false; reason: string };

/** Dawn's instance objects, kept reachable: collecting one under a live device corrupts the process. */
const instances: GPU[] = [];

interface NodeWebGPU {
  create(options: string[]): GPU;
  globals: object;
}

/** Dawn's OpenGL ES path (Mesa's software GL in CI) when MOEKIT_WEBGPU_BACKEND=opengl or no Vulkan adapter exists. */
async function nodeAdapter(): Promise<{ adapter: GPUAdapter | null; via: string } | { error: string }> {
  let mod: NodeWebGPU;
  try {
    // a name bundlers do not resolve: the browser uses navigator.gpu and never gets here
    const name = 'webgpu';
    mod = (await import(/* @vite-ignore */ name)) as NodeWebGPU;
  } catch (e) {
    return { error: `the optional package 'webgpu' cannot load (${(e as Error).message.split('\n')[0]})` };
  }
  // the GPUBufferUsage / GPUMapMode / GPUShaderStage constants live on globalThis in a browser
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  const forced = readEnv('MOEKIT_WEBGPU_BACKEND');
  const tries: string[] = forced ? [forced] : ['vulkan', 'opengl'];
  for (const b of tries) {
    // Dawn's GL backend runs without a display on Mesa's surfaceless EGL platform
    if (b === 'opengl' && !process.env['EGL_PLATFORM']) process.env['EGL_PLATFORM'] = 'surfaceless';
    const gpu = mod.create([`backend=${b}`]);
    instances.push(gpu);
    const adapter = b === 'opengl' ? await gpu.requestAdapter({ featureLevel: 'compatibility' }) : await gpu.requestAdapter();
    if (adapter) return { adapter, via: `Dawn ${b}` };
  }
  return { adapter: null, via: `Dawn (${tries.join(', ')})` };
}

function describeAdapter(adapter: GPUAdapter, via: string, limits: Record<string, number>): string {
  const i = adapter.info;
  const name = [i?.vendor, i?.architecture, i?.device, i?.description].filter((s) => s).join(' ') || 'unnamed adapter';
  const mode = adapter.features.has('core-features-and-limits') ? 'core' : 'compatibility';
  return (
    `${name} via ${via}, ${mode} mode; ` +
    `workgroup <= ${limits['maxComputeInvocationsPerWorkgroup']} invocations, ` +
    `storage buffers/stage ${limits['maxStorageBuffersPerShaderStage']}, ` +
    `buffer <= ${limits['maxBufferSize']} B, binding <= ${limits['maxStorageBufferBindingSize']} B, ` +
    `f16 ${adapter.features.has('shader-f16') ? 'yes' : 'no'}, subgroups ${adapter.features.has('subgroups') ? 'yes' : 'no'}`
  );
}

/** Open a device, or say in one line why none can be opened here. */
export async function openDevice(): Promise<DeviceResult> {
  let adapter: GPUAdapter | null;
  let via: string;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) {
    adapter = await nav.gpu.requestAdapter();
    via = 'navigator.gpu';
  } else if (typeof process !== 'undefined' && process.versions?.node) {
    const r = await nodeAdapter();
    if ('error' in r) return { ok: false, reason: r.error };
    ({ adapter, via } = r);
  } else {
    return { ok: false, reason: 'this JavaScript runtime has no navigator.gpu' };
  }
  if (!adapter) return { ok: false, reason: `no WebGPU adapter (${via} found none: no GPU driver here)` };
  const requiredLimits: Record<string, number> = {};
  for (const [k, want] of Object.entries(WANTED_LIMITS)) {
    const have = (adapter.limits as unknown as Record<string, number>)[k]!;
    if (have < want) return { ok: false, reason: `the adapter offers ${k} = ${have}, the kernels need ${want}` };
    requiredLimits[k] = want;
  }
  for (const k of ADAPTER_MAX_LIMITS) requiredLimits[k] = (adapter.limits as unknown as Record<string, number>)[k]!;
  const device = await adapter.requestDevice({ requiredLimits });
  const limits: Record<string, number> = {};
  for (const k in device.limits) limits[k] = (device.limits as unknown as Record<string, number>)[k]!;
  return { ok: true, opened: { device, limits, description: describeAdapter(adapter, via, limits) } };
}
