// Scalar math shared by the reference kernels (and the tests' independent references).

const TWO_OVER_SQRT_PI = 1.1283791670955126;

/** erf(x) to ~1e-15: Taylor series near 0, continued fraction for erfc in the tails. */
export function erf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax;
    let sum = ax;
    const x2 = ax * ax;
    for (let n = 1; n < 80; n++) {
      term *= -x2 / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    const r = TWO_OVER_SQRT_PI * sum;
    return x < 0 ? -r : r;
  }
  if (ax > 6) return x < 0 ? -1 : 1;
  // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + 1/2/(x + 1/(x + 3/2/(x + ...)))) (modified Lentz)
  const tiny = 1e-300;
  let f = ax;
  let c = ax;
  let d = 0;
  for (let i = 1; i < 200; i++) {
    const a = i / 2;
    d = ax + a * d;
    d = d === 0 ? tiny : d;
    c = ax + a / c;
    c = c === 0 ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / f;
  return x < 0 ? erfc - 1 : 1 - erfc;
}

const SQRT_2_OVER_PI = 0.7978845608028654;
const GELU_TANH_C = 0.044715;
const INV_SQRT2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;

export function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

export function unaryForward(op: string, x: number): number {
  switch (op) {
    case 'neg':
      return -x;
    case 'exp':
      return Math.exp(x);
    case 'log':
      return Math.log(x);
    case 'sqrt':
      return Math.sqrt(x);
    case 'rsqrt':
      return 1 / Math.sqrt(x);
    case 'abs':
      return Math.abs(x);
    case 'tanh':
      return Math.tanh(x);
    case 'sigmoid':
      return sigmoid(x);
    case 'silu':
      return x * sigmoid(x);
    case 'relu':
      return x > 0 ? x : 0;
    case 'gelu':
      return 0.5 * x * (1 + erf(x * INV_SQRT2));
    case 'gelu_tanh':
      return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x)));
    case 'sign':
      return x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'square':
      return x * x;
    case 'reciprocal':
      return 1 / x;
  }
  throw new Error(`unary: unknown op '${op}'`);
}

/** f'(x) for each unary op (subgradient 0 at the kinks of abs / relu / sign). */
export function unaryDerivative(op: string, x: number): number {
  switch (op) {
    case 'neg':
      return -1;
    case 'exp':
      return Math.exp(x);
    case 'log':
      return 1 / x;
    case 'sqrt':
      return 0.5 / Math.sqrt(x);
    case 'rsqrt':
      return -0.5 / (x * Math.sqrt(x));
    case 'abs':
      return x > 0 ? 1 : x < 0 ? -1 : 0;
    case 'tanh': {
      const t = Math.tanh(x);
      return 1 - t * t;
    }
    case 'sigmoid': {
      const s = sigmoid(x);
      return s * (1 - s);
    }
    case 'silu': {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case 'relu':
      return x > 0 ? 1 : 0;
    case 'gelu':
      return 0.5 * (1 + erf(x * INV_SQRT2)) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
    case 'gelu_tanh': {
      const u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
      const t = Math.tanh(u);
      const du = SQRT_2_OVER_PI * (1 + 3 * GELU_TANH_C * x * x);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * du;
    }
    case 'sign':
      return 0;
    case 'square':
      return 2 * x;
    case 'reciprocal':
      return -1 / (x * x);
  }
  throw new Error(`unaryBackward: unknown op '${op}'`);
}

export function binaryScalar(op: string, a: number, b: number): number {
  switch (op) {
    case 'add':
      return a + b;
    case 'sub':
      return a - b;
    case 'mul':
      return a * b;
    case 'div':
      return a / b;
    case 'pow':
      return a ** b;
    case 'maximum':
      return Number.isNaN(a) || Number.isNaN(b) ? NaN : a > b ? a : b;
    case 'minimum':
      return Number.isNaN(a) || Number.isNaN(b) ? NaN : a < b ? a : b;
    case 'eq':
      return a === b ? 1 : 0;
    case 'ne':
      return a !== b ? 1 : 0;
    case 'lt':
      return a < b ? 1 : 0;
    case 'le':
      return a <= b ? 1 : 0;
    case 'gt':
      return a > b ? 1 : 0;
    case 'ge':
      return a >= b ? 1 : 0;
  }
  throw new Error(`binary: unknown op '${op}'`);
}
