// Seeded, reproducible random numbers (xoshiro128**, seeded through splitmix32).
// One generator drives every random op unless a caller passes its own, so the same seed
// gives bit-identical runs on every backend.

function splitmix32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export interface GeneratorState {
  s: [number, number, number, number];
  /** A cached second normal from Box-Muller, or null. */
  spare: number | null;
}

export class Generator {
  private s = new Uint32Array(4);
  private spare: number | null = null;

  constructor(seed = 0) {
    this.seed(seed);
  }

  seed(seed: number): void {
    if (!Number.isFinite(seed)) throw new RangeError(`Generator.seed: seed must be a finite number (got ${seed})`);
    const sm = splitmix32(Math.trunc(seed) ^ Math.trunc(seed / 2 ** 32));
    for (let i = 0; i < 4; i++) this.s[i] = sm();
    this.spare = null;
  }

  /** Next uint32. */
  nextU32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1]! << 9) >>> 0;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number {
    return this.nextU32() / 4294967296;
  }

  /** Standard normal (Box-Muller, caching the second value). */
  normal(): number {
    if (this.spare !== null) {
      const v = this.spare;
      this.spare = null;
      return v;
    }
    let u = this.uniform();
    while (u === 0) u = this.uniform();
    const v = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.uniform() * n);
  }

  /** The live state words s[0..3] (a backend's dropoutMask advances them in place). @internal */
  stateWords(): Uint32Array {
    return this.s;
  }

  getState(): GeneratorState {
    return { s: [this.s[0]!, this.s[1]!, this.s[2]!, this.s[3]!], spare: this.spare };
  }

  setState(state: GeneratorState): void {
    if (!Array.isArray(state.s) || state.s.length !== 4) throw new TypeError('Generator.setState: state.s must hold 4 uint32');
    this.s.set(state.s);
    this.spare = state.spare;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** The default generator behind every random op. */
export const defaultGenerator = new Generator(0);

/** Seed the default generator (PyTorch's torch.manual_seed). */
export function manualSeed(seed: number): void {
  defaultGenerator.seed(seed);
}
