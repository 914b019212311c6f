// Checkpoints of a model trained on a device backend: host copies of its state dict and its
// optimiser's (reference-backend tensors), read in one wait, for the synchronous writers.
// On CPU backends the dicts pass through unread (the writers read them as before).
import type { AdamWStateDict } from '../optim/adamw.js';
import type { StateDict } from '../nn/module.js';
import { referenceBackend } from '../backend/reference/index.js';
import { type Reads, read } from '../tensor/reads.js';
import { Tensor } from '../tensor/tensor.js';

/** The model's and the optimiser's state with every device tensor copied to the host. */
export function* hostCheckpointState(model: StateDict, optimizer: AdamWStateDict): Reads<{ model: StateDict; optimizer: AdamWStateDict }> {
  const modelTensors = Object.values(model);
  const moments = Object.values(optimizer.state).flatMap((s) => [s.expAvg, s.expAvgSq]);
  if (![...modelTensors, ...moments].some((t) => t.backend.onDevice)) return { model, optimizer };
  const values = yield* read(...modelTensors, ...moments);
  const copies = new Map<Tensor, Tensor>();
  [...modelTensors, ...moments].forEach((t, i) => {
    copies.set(t, new Tensor(referenceBackend.fromArray(values[i]!.slice()), t.shape, referenceBackend));
  });
  const state: AdamWStateDict['state'] = {};
  for (const [k, s] of Object.entries(optimizer.state))
    state[Number(k)] = { ...s, expAvg: copies.get(s.expAvg)!, expAvgSq: copies.get(s.expAvgSq)! };
  return {
    model: Object.fromEntries(Object.entries(model).map(([k, t]) => [k, copies.get(t)!])),
    optimizer: { ...optimizer, state },
  };
}
