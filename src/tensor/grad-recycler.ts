// Inside a tidy scope (scope.ts), backward gives its spent intermediate gradients to the storage
// pool as soon as nothing holds them, instead of at the scope's end: a scope keeps what it
// tracks alive until it closes, so without this a step would hold every gradient it made on
// top of its activations (peak memory), where V8 would have freed them during the backward.
//
// A gradient's storage goes back when: the backward (a scope of its own, handed to the
// enclosing one at the end) made its tensor and had its storage handed out (scope.ts's rule);
// it is no longer a value of the
// pending-gradients map, nor a leaf's or retained tensor's .grad, nor read out as an array; and
// the node's backward that took or made it has returned. The rule this rests on: a node's
// backward keeps neither its gradOutput nor the gradients it returns (GradNode, autograd.ts).
import { handOver, innermostScope, popScope, pushScope, recyclable, recycle, type ScopeState } from './scope-state.js';
import type { Tensor } from './tensor.js';

function bufferOf(t: Tensor): ArrayBufferLike | null {
  const s = t.storageOrNull();
  return s && ArrayBuffer.isView(s) ? s.buffer : null;
}

export class GradRecycler {
  /** Buffers of the pending gradients, with how many of them share each. */
  private readonly live = new Map<ArrayBufferLike, number>();
  private readonly spentNow: Tensor[] = [];
  /** Buffers of leaf / retained grads: kept through this backward (the enclosing scope's roots decide after). */
  private readonly kept = new Set<ArrayBufferLike>();

  private constructor(
    private readonly scope: ScopeState,
    private readonly outer: ScopeState,
  ) {}

  /** A recycler when a tidy scope is open (else null: backward leaves its gradients to the GC). */
  static open(): GradRecycler | null {
    const outer = innermostScope();
    return outer ? new GradRecycler(pushScope(), outer) : null;
  }

  /** g became a pending gradient. */
  held(g: Tensor): void {
    const b = bufferOf(g);
    if (b) this.live.set(b, (this.live.get(b) ?? 0) + 1);
  }

  /** g stopped being a pending gradient. */
  dropped(g: Tensor): void {
    const b = bufferOf(g);
    if (!b) return;
    const n = this.live.get(b)! - 1;
    if (n === 0) this.live.delete(b);
    else this.live.set(b, n);
  }

  /** g is a leaf's or a retained tensor's .grad: it outlives the backward. */
  keep(g: Tensor): void {
    const b = bufferOf(g);
    if (b) this.kept.add(b);
  }

  /** g is dead once the current node is done (release() decides). */
  spent(g: Tensor): void {
    this.spentNow.push(g);
  }

  /** After a node: give back the spent gradients' storages that nothing holds. */
  release(): void {
    for (const g of this.spentNow) {
      const s = g.storageOrNull();
      if (!s || g.id < this.scope.firstId || g.backend.onDevice || !recyclable(this.scope, s, g.storageGeneration)) continue;
      if (this.live.has(s.buffer) || this.kept.has(s.buffer)) continue;
      g.markReleased();
      recycle(s);
    }
    this.spentNow.length = 0;
  }

  /** The backward is over (or failed): what it made belongs to the enclosing scope. */
  finish(): void {
    popScope(this.scope);
    handOver(this.scope, this.outer);
  }
}
