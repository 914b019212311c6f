// Child process for the kill-point property test: trains the micro CT-MoE variant into
// argv[2] (resuming what is there), printing "checkpoint <step>" after each checkpoint, so
// the parent can SIGKILL it at a chosen point.
import { runAblation } from '../../src/experiments/ctmoe/ablation.js';
import { KILL_TEST_CONFIG, KILL_TEST_VARIANT, killTestData } from './ctmoe-kill-setup.js';

runAblation({
  preset: KILL_TEST_CONFIG,
  outDir: process.argv[2]!,
  variants: [KILL_TEST_VARIANT],
  data: killTestData(),
  onProgress: (p) => {
    if (p.phase === 'checkpoint') process.stdout.write(`checkpoint ${p.step}\n`);
  },
});
