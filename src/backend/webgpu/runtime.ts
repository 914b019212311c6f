// The WebGPU runtime under the kernels: storages in GPU buffers (pooled), one command encoder
// that ops append compute passes to (submitted at reads, uploads and every FLUSH_EVERY ops),
// a pipeline cache keyed by WGSL source, and device errors turned into errors naming the op.
/// <reference types="@webgpu/types" />
import type { DType } from '../types.js';

/** A tensor's elements in a GPU buffer. Only the webgpu backend looks inside. */
export class GpuStorage {
  constructor(
    readonly buffer: GPUBuffer,
    readonly dtype: 'f32' | 'i32',
    readonly length: number,
  ) {}
}

const FLUSH_EVERY = 64;
/** Params words per op (uniform array<vec4u, 12>): enough for rank-8 shapes with three strides. */
export const PARAM_WORDS = 48;

export type Binding = GpuStorage | null;

export class GpuRuntime {
  private encoder: GPUCommandEncoder | null = null;
  private pending = 0;
  /** Param buffers of the unsubmitted encoder (see paramBuffer). */
  private inFlight: GPUBuffer[] = [];
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Freed buffers by byte size, reused before creating new ones. */
  private readonly pool = new Map<number, GPUBuffer[]>();
  private readonly released = new FinalizationRegistry<GPUBuffer>((b) => this.recycle(b));
  /** The first error an op's scope caught since the last read; read() throws it. */
  private deviceError: Error | null = null;
  /** Errors outside any op's scope (the scoped error of the op that caused them comes first). */
  private uncaptured: Error | null = null;
  /** Error scopes not yet popped: read() waits for them before it returns. */
  private scopes: Promise<void>[] = [];
  /** Bound where a kernel has an optional input that is absent. */
  private dummy: GPUBuffer | null = null;

  constructor(readonly device: GPUDevice) {
    device.addEventListener('uncapturederror', (e) => {
      this.uncaptured ??= new Error(`webgpu: device error: ${(e as GPUUncapturedErrorEvent).error.message.split('\n')[0]}`);
    });
  }

  private recycle(b: GPUBuffer): void {
    const list = this.pool.get(b.size);
    if (list) list.push(b);
    else this.pool.set(b.size, [b]);
  }

  /** A storage of n elements, contents arbitrary (a pooled buffer) unless written after. */
  alloc(dtype: DType, n: number): GpuStorage {
    if (dtype === 'f64') throw new TypeError(F64_MESSAGE);
    if (dtype === 'bf16' || dtype === 'f16') throw new TypeError(`webgpu: ${dtype} tensors are not supported on this backend yet`);
    // storage bindings need a non-zero size that is a multiple of 4; pool by 256-byte steps
    const size = Math.max(256, Math.ceil((n * 4) / 256) * 256);
    const max = this.device.limits.maxStorageBufferBindingSize;
    if (size > max)
      throw new RangeError(`webgpu: a ${dtype} tensor of ${n} elements needs ${size} bytes; this device binds at most ${max}`);
    const buffer =
      this.pool.get(size)?.pop() ??
      this.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const s = new GpuStorage(buffer, dtype, n);
    this.released.register(s, buffer);
    return s;
  }

  upload(a: Float32Array | Int32Array): GpuStorage {
    const s = this.alloc(a instanceof Float32Array ? 'f32' : 'i32', a.length);
    this.flush(); // queue.writeBuffer runs before commands still in the encoder
    if (a.length > 0) this.device.queue.writeBuffer(s.buffer, 0, a.buffer, a.byteOffset, a.byteLength);
    return s;
  }

  /**
   * The pipeline for `code`, with its layout spelled out from the declarations (layout
   * 'auto' drops bindings a kernel variant does not use, and the bind group would not fit).
   */
  private pipeline(code: string): GPUComputePipeline {
    let p = this.pipelines.get(code);
    if (!p) {
      const entries: GPUBindGroupLayoutEntry[] = [{ binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } }];
      for (const m of code.matchAll(/@binding\((\d+)\) var<storage, (read|read_write)>/g)) {
        entries.push({
          binding: Number(m[1]),
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: m[2] === 'read' ? 'read-only-storage' : 'storage' },
        });
      }
      const layout = this.device.createPipelineLayout({ bindGroupLayouts: [this.device.createBindGroupLayout({ entries })] });
      p = this.device.createComputePipeline({ layout, compute: { module: this.device.createShaderModule({ code }), entryPoint: 'main' } });
      this.pipelines.set(code, p);
    }
    return p;
  }

  /**
   * A fresh uniform buffer per op, written at creation (no queue write to order). Held until
   * the queue has finished the submit that uses it: Dawn aborts the process when a buffer
   * still in flight is destroyed, and collecting its JS object destroys it.
   */
  private paramBuffer(words: readonly number[], floats: readonly number[]): GPUBuffer {
    if (words.length + floats.length > PARAM_WORDS)
      throw new RangeError(`webgpu: ${words.length + floats.length} kernel params exceed ${PARAM_WORDS}`);
    const b = this.device.createBuffer({ size: PARAM_WORDS * 4, usage: GPUBufferUsage.UNIFORM, mappedAtCreation: true });
    const range = b.getMappedRange();
    new Uint32Array(range).set(words.map((w) => w >>> 0));
    new Float32Array(range).set(floats, words.length);
    b.unmap();
    this.inFlight.push(b);
    return b;
  }

  /**
   * Enqueue one kernel: `code` binds the params uniform at 0 and `bindings` at 1.. in order;
   * `words` are u32 params (negative numbers wrap), `floats` f32 params after them.
   * `groups` is the workgroup count (spread over x and y past the per-dimension limit).
   */
  run(
    op: string,
    code: string,
    bindings: readonly Binding[],
    words: readonly number[],
    floats: readonly number[],
    groups: number | [number, number, number],
  ): void {
    const g: [number, number, number] =
      typeof groups === 'number' ? spread(groups, this.device.limits.maxComputeWorkgroupsPerDimension) : groups;
    if (g[0] * g[1] * g[2] === 0) return;
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    const pipeline = this.pipeline(code);
    const entries: GPUBindGroupEntry[] = [{ binding: 0, resource: { buffer: this.paramBuffer(words, floats) } }];
    bindings.forEach((s, i) => entries.push({ binding: i + 1, resource: { buffer: s ? s.buffer : this.dummyBuffer() } }));
    this.encoder ??= this.device.createCommandEncoder();
    const pass = this.encoder.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
    pass.dispatchWorkgroups(...g);
    pass.end();
    this.watch(op);
    if (++this.pending >= FLUSH_EVERY) this.flush();
  }

  /** dst[0..n) = src[0..n) as a buffer copy. */
  copy(op: string, src: GpuStorage, dst: GpuStorage): void {
    this.device.pushErrorScope('validation');
    this.device.pushErrorScope('out-of-memory');
    this.encoder ??= this.device.createCommandEncoder();
    const bytes = src.length * 4;
    if (bytes > 0) this.encoder.copyBufferToBuffer(src.buffer, 0, dst.buffer, 0, bytes);
    this.watch(op);
  }

  /** Pop the two error scopes pushed for `op`: a device error becomes ours, thrown at the next read. */
  private watch(op: string): void {
    const note = (e: GPUError | null) => {
      if (e) this.deviceError ??= new Error(`webgpu: ${op} failed on the device: ${e.message.split('\n')[0]}`);
    };
    this.scopes.push(this.device.popErrorScope().then(note), this.device.popErrorScope().then(note));
  }

  private dummyBuffer(): GPUBuffer {
    this.dummy ??= this.device.createBuffer({ size: 256, usage: GPUBufferUsage.STORAGE });
    return this.dummy;
  }

  flush(): void {
    if (this.encoder) {
      this.device.queue.submit([this.encoder.finish()]);
      this.encoder = null;
    }
    this.pending = 0;
    const held = this.inFlight;
    this.inFlight = [];
    if (held.length > 0) void this.device.queue.onSubmittedWorkDone().then(() => held.forEach((b) => b.destroy()));
  }

  /** Wait for the queue and copy the storage back to the host. */
  async read(s: GpuStorage): Promise<Float32Array | Int32Array> {
    const bytes = s.length * 4;
    const staging = this.device.createBuffer({ size: Math.max(4, bytes), usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.encoder ??= this.device.createCommandEncoder();
    if (bytes > 0) this.encoder.copyBufferToBuffer(s.buffer, 0, staging, 0, bytes);
    this.flush();
    try {
      await staging.mapAsync(GPUMapMode.READ);
      const host = staging.getMappedRange(0, Math.max(4, bytes)).slice(0, bytes);
      staging.unmap();
      await this.throwDeviceError();
      return s.dtype === 'f32' ? new Float32Array(host) : new Int32Array(host);
    } finally {
      staging.destroy();
    }
  }

  /** Errors from earlier ops surface at the read that waits for them. */
  private async throwDeviceError(): Promise<void> {
    const scopes = this.scopes;
    this.scopes = [];
    await Promise.all(scopes);
    const e = this.deviceError ?? this.uncaptured;
    this.deviceError = this.uncaptured = null;
    if (e) throw e;
  }
}

export const F64_MESSAGE =
  'webgpu: f64 is not available on WebGPU (WGSL has no 64-bit floats); use f32 tensors (f64 runs on the native and reference backends)';

/** Workgroup counts over x (and y past the per-dimension limit); kernels linearise with linearId(). */
function spread(n: number, maxPerDim: number): [number, number, number] {
  if (n <= maxPerDim) return [n, 1, 1];
  const y = Math.ceil(n / maxPerDim);
  return [Math.ceil(n / y), y, 1];
}
