// The CT-MoE figures (the seed's fig1..fig11) as Vega-Lite specs built from results.json, and
// writeAllFigures, which renders each to DIR/figures/<name>.svg and .png.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ChartSpec, writeFigure } from '../../../report/charts.js';
import { type CtMoeAblationResults, resultSeeds } from '../ablation.js';
import { fig7DomainPpl, fig8Specialisation } from './bars.js';
import { variantsWithS } from './common.js';
import { fig1ValPpl, fig2TrainLoss, fig3RoutingEntropy, fig5SEntropy, fig6SMax } from './curves.js';
import { fig11AblationTable } from './table.js';
import { fig10SComparison, fig4SHeatmaps, fig9Eigenspectrum } from './topology.js';

export * from './bars.js';
export * from './common.js';
export * from './curves.js';
export * from './table.js';
export * from './topology.js';

export const FIGURES_DIR = 'figures';

export interface FigureEntry {
  /** File name without extension (the seed's: fig1_val_ppl, fig4_S_<variant>, ...). */
  name: string;
  /** One sentence on what it shows (the report's caption). */
  caption: string;
  spec: ChartSpec;
}

/** Every figure for these results, in the seed's order; fig4 once per variant that has S. */
export function allFigures(results: CtMoeAblationResults): FigureEntry[] {
  const withS = variantsWithS(results);
  const noS = results.order
    .filter((k) => results.variants[k]?.status === 'done' && results.variants[k]?.result?.finalS === null)
    .map((k) => results.variants[k]!.label);
  const skipped = noS.length ? ` ${noS.join(', ')} has no S and is not shown.` : '';
  const out: FigureEntry[] = [
    {
      name: 'fig1_val_ppl',
      caption:
        'Validation perplexity on the mixed (half code, half prose) set at every log point: log scale over the whole run, and a zoomed linear view of the late run with the final values.',
      spec: fig1ValPpl(results),
    },
    {
      name: 'fig2_train_loss',
      caption: 'Training loss per step (CE plus the scaled load-balancing term), trailing moving average over 7 steps.',
      spec: fig2TrainLoss(results),
    },
    {
      name: 'fig3_routing_entropy',
      caption: 'Entropy of the expert usage between log points (mean over layers); the dashed line is uniform usage, log N.',
      spec: fig3RoutingEntropy(results),
    },
  ];
  for (const v of withS) {
    const spec = fig4SHeatmaps(results, v.key);
    if (spec) {
      out.push({
        name: `fig4_S_${v.key}`,
        caption: `Learned S of ${v.label} in layers {0, n/2, n-1}; cells above the uniform level 1/(N-1) are outlined (the seed's contour at 1/(N-1), drawn on the discrete cells).${skipped}`,
        spec,
      });
    }
  }
  out.push(
    {
      name: 'fig5_S_entropy',
      caption: `Row entropy of S during training (mean over layers); the dashed line, log(N-1), is S uniform off the diagonal.${skipped}`,
      spec: fig5SEntropy(results),
    },
    {
      name: 'fig6_S_max',
      caption: `Largest off-diagonal entry of S during training (mean over layers); the dashed line is the uniform 1/(N-1).${skipped}`,
      spec: fig6SMax(results),
    },
    {
      name: 'fig7_domain_ppl',
      caption:
        'Final validation perplexity per domain (code, prose, mixed), one bar per variant; with several seeds the mean over seeds and its 95% interval.',
      spec: fig7DomainPpl(results),
    },
    {
      name: 'fig8_specialization',
      caption:
        'Per-expert specialisation of CT-MoE (Full), (f_code - f_prose)/(f_code + f_prose), and its routing frequencies on code and prose validation text.',
      spec: fig8Specialisation(results),
    },
    {
      name: 'fig9_eigenspectrum',
      caption: `Eigenspectrum of the final layer's S, |λ| normalised to sum 1, against the flat spectrum 1/N.${skipped}`,
      spec: fig9Eigenspectrum(results),
    },
    {
      name: 'fig10_S_comparison',
      caption: `The final layer's S of each variant side by side on one colour scale (shared maximum).${skipped}`,
      spec: fig10SComparison(results),
    },
    {
      name: 'fig11_ablation_table',
      caption: 'The ablation summary table (best PPL per column in green bold).',
      spec: fig11AblationTable(results),
    },
  );
  // with several seeds only fig7 and fig11 aggregate them; the others show the first seed's runs
  const seeds = resultSeeds(results);
  if (seeds.length > 1) {
    const note = ` With ${seeds.length} seeds, this shows the first seed's runs (seed ${seeds[0]}); fig7 and fig11 show the means and intervals over all.`;
    for (const f of out) if (f.name !== 'fig7_domain_ppl' && f.name !== 'fig11_ablation_table') f.caption += note;
  }
  return out;
}

export interface WrittenFigure {
  name: string;
  caption: string;
  svg: string;
  png: string;
}

/** Render every figure to DIR/figures/<name>.svg and .png (atomic writes); returns them in order. */
export async function writeAllFigures(results: CtMoeAblationResults, dir: string): Promise<WrittenFigure[]> {
  const figDir = join(dir, FIGURES_DIR);
  mkdirSync(figDir, { recursive: true });
  const written: WrittenFigure[] = [];
  for (const f of allFigures(results)) {
    const paths = await writeFigure(figDir, f.name, f.spec);
    written.push({ name: f.name, caption: f.caption, ...paths });
  }
  return written;
}
