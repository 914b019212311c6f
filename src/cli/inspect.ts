// `moekit inspect <config.json | model dir | preset>`: layer map, parameters, FLOPs, memory;
// with safetensors in the directory, a tensor-by-tensor check and per-expert weight norms.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { formatCheckpointCheck, formatExpertNorms } from '../inspect/format-checkpoint.js';
import { formatInspectReport, humanCount } from '../inspect/report.js';
import { type TargetInspection, inspectTarget } from '../inspect/target.js';
import { parsePositiveInt } from './args.js';

/** Show a progress bar when the expert tensors to read exceed this many bytes. */
const PROGRESS_MIN_BYTES = 256 * 2 ** 20;

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .argument(
      '<target>',
      'a config.json, a model directory (config.json + safetensors, sharded or not), a shipped model (e.g. deepseek-v3, mixtral-8x7b; an unknown name lists them) or an OLMo-core MoE block (smallmoe, olmoe_1B_7B)',
    )
    .description(
      'whole-model accounting: layer map, total / active parameters, FLOPs per token, weight memory; checks a checkpoint against its config',
    )
    .option('--json', 'print the report as JSON')
    .option('--seq-len <n>', 'sequence length for the attention FLOPs', parsePositiveInt('--seq-len'), 4096)
    .option('--no-norms', 'skip reading the experts for their weight norms')
    .action((target: string, opts: { json?: boolean; seqLen: number; norms: boolean }) => {
      const progress: { bar: cliProgress.SingleBar | null } = { bar: null };
      let result: TargetInspection;
      try {
        result = inspectTarget(target, {
          seqLen: opts.seqLen,
          norms: opts.norms,
          onNormsStart: (total) => {
            if (total < PROGRESS_MIN_BYTES || opts.json) return;
            progress.bar = new cliProgress.SingleBar(
              { format: 'expert norms |{bar}| {percentage}% | {value}/{total} MiB', hideCursor: true },
              cliProgress.Presets.shades_classic,
            );
            progress.bar.start(Math.ceil(total / 2 ** 20), 0);
          },
          onNormsProgress: (read) => progress.bar?.update(Math.floor(read / 2 ** 20)),
        });
      } catch (e) {
        // main.ts reports it (one line and a hint, errors.ts)
        progress.bar?.stop();
        throw e;
      }
      progress.bar?.stop();
      if (opts.json) {
        const { model, ...rest } = result;
        console.log(JSON.stringify({ ...rest, model: model && { ...model, spec: { ...model.spec, text: undefined } } }, null, 2));
        return;
      }
      if (result.block) {
        const b = result.block;
        console.log(
          `${b.preset} (one MoE block, hidden ${b.config.hiddenSize}): ${b.config.router.numExperts} experts, top-${b.config.router.topK}, expert width ${b.config.experts.intermediateSize}${b.config.shared ? `, shared ${b.config.shared.intermediateSize}` : ''}`,
        );
        console.log(
          `parameters ${b.params.total.toLocaleString('en-US')} (${humanCount(b.params.total)}), active ${b.params.active.toLocaleString('en-US')} (${humanCount(b.params.active)}), forward ${b.forwardFlops.toExponential(3)} FLOPs per token`,
        );
        return;
      }
      console.log(formatInspectReport(result.model!));
      if (result.checkpoint) {
        console.log('');
        console.log(formatCheckpointCheck(result.checkpoint));
        if (!result.checkpoint.ok) process.exitCode = 2;
      }
      if (result.expertNorms) {
        console.log('');
        console.log(formatExpertNorms(result.expertNorms));
      }
    });
}
