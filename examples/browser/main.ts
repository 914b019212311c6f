/// <reference lib="dom" />
// The page's script: says whether WebGPU is there, trains the tiny MoE on the reference backend
// and shows the losses; window.moekitResult is what the headless test reads.
import { setBackend } from '../../src/backend/index.js';
import { openWebGPUBackend } from '../../src/backend/webgpu/index.js';
import { trainTinyMoE } from './train.js';

const out = document.getElementById('out')!;
const gpu = await openWebGPUBackend();
// The MoE layer reads its routing on the host synchronously (counts, slot plan), which a GPU
// backend cannot do yet: the layer trains on the reference backend even where WebGPU opens.
const webgpu = gpu.backend ? `WebGPU: ${gpu.description}` : `no WebGPU (${gpu.reason})`;
setBackend('reference');
const r = trainTinyMoE();
out.textContent = `${webgpu}\nbackend: reference\nloss ${r.losses[0]!.toFixed(4)} -> ${r.losses.at(-1)!.toFixed(4)} in ${r.losses.length} steps, ${r.ms.toFixed(0)} ms`;
(window as unknown as { moekitResult: unknown }).moekitResult = { webgpu, backend: 'reference', ...r };
