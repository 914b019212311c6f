// Bundles examples/browser/main.ts for the page (examples/browser/dist/main.js) with esbuild.
// Node built-ins that the Node-only parts of moekit import (the native addon's loader, the
// file IO, the GC hooks) become inert stubs: the page never uses those parts. `process.env`
// reads (the MoE execution plan's MOEKIT_MOE_PATH, the GC switch) see an empty environment.
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const here = fileURLToPath(new URL('.', import.meta.url));

const nodeStubs: Plugin = {
  name: 'node-builtins-stub',
  setup(b) {
    b.onResolve({ filter: /^(node:.*|module|fs|path|url|crypto|v8|vm)$/ }, (a) => ({ path: a.path, namespace: 'node-stub' }));
    b.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({
      // every export is a function returning undefined (the addon loader computes a path at
      // load time, then finds no addon); the prototype route survives esbuild's ESM interop
      contents: `module.exports = Object.create(new Proxy({}, { get: (_, k) => (k === '__esModule' ? undefined : () => undefined) }));`,
      loader: 'js',
    }));
  },
};

export async function buildBrowserExample(): Promise<string> {
  const outfile = `${here}dist/main.js`;
  await build({
    entryPoints: [`${here}main.ts`],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    outfile,
    plugins: [nodeStubs],
    define: { 'process.env': '{}' },
    logLevel: 'error',
  });
  return outfile;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(await buildBrowserExample());
