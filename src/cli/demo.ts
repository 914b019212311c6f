// `moekit demo`: train the tiny GPT on real text and print the falling loss.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { backendInfo } from '../backend/registry.js';
import { TINY_LM_DEFAULTS, trainTinyLm } from '../experiments/tiny-lm.js';
import { parsePositiveInt } from './args.js';

export function registerDemoCommand(program: Command): void {
  program
    .command('demo', { isDefault: true })
    .description('train a tiny GPT on real text (effect sources + State of the Union) and print its falling loss')
    .option('--steps <n>', 'training steps', parsePositiveInt('--steps'), TINY_LM_DEFAULTS.steps)
    .option('--seed <n>', 'random seed', parsePositiveInt('--seed', 0), TINY_LM_DEFAULTS.seed)
    .option('--log-every <n>', 'print the loss every n steps', parsePositiveInt('--log-every'), 25)
    .action((opts: { steps: number; seed: number; logEvery: number }) => {
      console.log(backendInfo().reason);
      const config = { ...TINY_LM_DEFAULTS, steps: opts.steps, seed: opts.seed };
      console.log(
        `tiny GPT: vocab ${config.vocabSize}, ${config.nLayer} layers, d_model ${config.dModel}, ${config.nHead} heads, ` +
          `seq ${config.seqLen}, batch ${config.batchSize}, ${config.steps} steps, seed ${config.seed}`,
      );
      const bar = new cliProgress.SingleBar(
        { format: 'training |{bar}| {value}/{total} steps | loss {loss} | {tps} tok/s | ETA {eta_formatted}', hideCursor: true },
        cliProgress.Presets.shades_classic,
      );
      const logged: string[] = [];
      bar.start(config.steps, 0, { loss: '-', tps: '-' });
      const result = trainTinyLm(config, (s) => {
        bar.update(s.step, { loss: s.loss.toFixed(3), tps: Math.round(s.tokensPerSec) });
        if (s.step === 1 || s.step % opts.logEvery === 0)
          logged.push(`  step ${String(s.step).padStart(4)}  loss ${s.loss.toFixed(4)}  lr ${s.lr.toExponential(2)}`);
      });
      bar.stop();
      console.log(logged.join('\n'));
      console.log(
        `unigram entropy of the training text: ${result.unigramEntropy.toFixed(4)} nats/token (a context-free model's best loss)`,
      );
      console.log(
        `validation loss after ${config.steps} steps: ${result.valLoss.toFixed(4)} nats/token (perplexity ${Math.exp(result.valLoss).toFixed(1)})`,
      );
      console.log(`${result.trainTokens} training tokens, ${result.seconds.toFixed(1)} s in all`);
    });
}
