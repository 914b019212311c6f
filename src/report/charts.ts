// Charts: Vega-Lite specs rendered headless to SVG (vega) and PNG (resvg, with a bundled font).
// The renderers load on first use: they are a quarter of the CLI's start-up, and most commands
// draw nothing.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { writeFileAtomic } from '../io/atomic.js';

export type ChartSpec = TopLevelSpec;

const FONT_FAMILY = 'DejaVu Sans';

/** DejaVu Sans from the dejavu-fonts-ttf package, so PNG text renders on machines without fonts. */
function fontFiles(): string[] {
  const require = createRequire(import.meta.url);
  const dir = join(dirname(require.resolve('dejavu-fonts-ttf/package.json')), 'ttf');
  return [join(dir, 'DejaVuSans.ttf'), join(dir, 'DejaVuSans-Bold.ttf')];
}

/** Vega-Lite -> SVG markup, with every text in the bundled font. */
export async function renderSvg(spec: ChartSpec): Promise<string> {
  const withFont: ChartSpec = {
    ...spec,
    config: { font: FONT_FAMILY, ...(spec as { config?: object }).config },
  } as ChartSpec;
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(withFont).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

/** SVG markup -> PNG bytes at `scale` x the SVG's size (2 gives ~150 dpi for a typical chart). */
export async function svgToPng(svg: string, scale = 2): Promise<Uint8Array> {
  const { Resvg } = await import('@resvg/resvg-js');
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { fontFiles: fontFiles(), loadSystemFonts: false, defaultFontFamily: FONT_FAMILY },
  });
  return resvg.render().asPng();
}

/** Write DIR/name.svg and DIR/name.png atomically; returns their paths. */
export async function writeFigure(dir: string, name: string, spec: ChartSpec): Promise<{ svg: string; png: string }> {
  const svg = await renderSvg(spec);
  const svgPath = join(dir, `${name}.svg`);
  const pngPath = join(dir, `${name}.png`);
  await writeFileAtomic(svgPath, svg);
  await writeFileAtomic(pngPath, await svgToPng(svg));
  return { svg: svgPath, png: pngPath };
}
