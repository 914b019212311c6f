// Reverse-mode autograd: grad mode, graph nodes, and the backward pass.
import { GradRecycler } from './grad-recycler.js';
import type { Tensor } from './tensor.js';

/** One recorded op: its differentiable inputs and how to map the output grad to theirs. */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  /**
   * Grads w.r.t. each input (null where an input needs none). Runs under noGrad. Keeps neither
   * gradOutput nor the returned grads (inside a tidy scope backward recycles them once spent).
   */
  backward(gradOutput: Tensor): readonly (Tensor | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn without recording a graph (PyTorch's torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with graph recording switched on or off. */
export function withGradEnabled<T>(enabled: boolean, fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = enabled;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Tensors reachable from root through grad nodes, inputs before outputs. */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>();
  // iterative post-order DFS: deep graphs (long training unrolls) must not overflow the stack
  const stack: { t: Tensor; next: number }[] = [{ t: root, next: 0 }];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const inputs = top.t.gradFn?.inputs ?? [];
    if (top.next < inputs.length) {
      const child = inputs[top.next++]!;
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push({ t: child, next: 0 });
      }
    } else {
      order.push(top.t);
      stack.pop();
    }
  }
  return order;
}

export interface BackwardOptions {
  /** Keep the graph so backward can run through it again (default false). */
  retainGraph?: boolean;
}

/** Tensor arithmetic backward needs, injected by the tensor module to avoid an import cycle with the ops. */
export interface GradArithmetic {
  add(a: Tensor, b: Tensor): Tensor;
  /** `g` cast to `like`'s dtype. */
  toDtypeOf(g: Tensor, like: Tensor): Tensor;
}

/**
 * Accumulate d(root)/d(leaf) into every leaf's `.grad`, seeding with `seed` (same shape as root).
 * Each gradient takes its input's dtype (as PyTorch: an f32 parameter cast to bf16 gets f32 grads).
 */
export function runBackward(root: Tensor, seed: Tensor, ops: GradArithmetic, options: BackwardOptions = {}): void {
  const { add } = ops;
  const order = topologicalOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  // inside a tidy scope: spent gradients go back to the storage pool as the pass goes (grad-recycler.ts)
  const rec = GradRecycler.open();
  rec?.held(seed);
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    for (let i = order.length - 1; i >= 0; i--) {
      const t = order[i]!;
      if (t.isReleased) void t.storage; // throws: a tidy scope released a tensor this graph needs
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      rec?.dropped(g);
      if (t.retainsGrad || !t.gradFn) {
        if (t.grad) {
          t.grad = add(t.grad, g);
          rec?.spent(g);
        } else t.grad = g;
        rec?.keep(t.grad);
      }
      const node = t.gradFn;
      if (!node) {
        rec?.release();
        continue;
      }
      const inputGrads = node.backward(g);
      rec?.spent(g);
      node.inputs.forEach((input, j) => {
        const gi = inputGrads[j];
        if (!gi) return;
        if (!input.requiresGrad) {
          rec?.spent(gi);
          return;
        }
        if (gi.shape.length !== input.shape.length || gi.shape.some((d, k) => d !== input.shape[k])) {
          throw new Error(
            `autograd: ${node.name} produced a gradient of shape [${gi.shape.join(', ')}] for an input of shape [${input.shape.join(', ')}]`,
          );
        }
        let g1 = gi;
        if (gi.dtype !== input.dtype) {
          g1 = ops.toDtypeOf(gi, input);
          rec?.spent(gi);
        }
        const acc = grads.get(input);
        if (acc) {
          const sum = add(acc, g1);
          rec?.dropped(acc);
          rec?.spent(acc);
          rec?.spent(g1);
          grads.set(input, sum);
          rec?.held(sum);
        } else {
          grads.set(input, g1);
          rec?.held(g1);
        }
      });
      if (!options.retainGraph) t.releaseGraph();
      rec?.release();
    }
  } finally {
    gradEnabled = prev;
    rec?.finish();
  }
}
