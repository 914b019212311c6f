// CT-MoE diagnostics, computed in float64 from plain arrays (cheap, no autograd):
// S row entropy, S max, routing entropy from a usage counter, and the seed's eigenspectrum.

/** mean_i( -sum_j S_ij log(S_ij + 1e-9) ) of a row-major [N, N] S (uniform off-diagonal: log(N-1)). */
export function sRowEntropy(s: ArrayLike<number>, n: number): number {
  checkSquare(s, n, 'sRowEntropy');
  let total = 0;
  for (let i = 0; i < n; i++) {
    let h = 0;
    for (let j = 0; j < n; j++) {
      const p = s[i * n + j]!;
      h -= p * Math.log(p + 1e-9);
    }
    total += h;
  }
  return total / n;
}

/** Largest off-diagonal entry of S (uniform: 1/(N-1)). */
export function sMaxOffDiagonal(s: ArrayLike<number>, n: number): number {
  checkSquare(s, n, 'sMaxOffDiagonal');
  let m = -Infinity;
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) if (i !== j && s[i * n + j]! > m) m = s[i * n + j]!;
  return m;
}

/** p = usage / (sum + 1e-9); H = -sum p log(p + 1e-9) (uniform: log N). */
export function routingEntropy(usage: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < usage.length; i++) sum += usage[i]!;
  let h = 0;
  for (let i = 0; i < usage.length; i++) {
    const p = usage[i]! / (sum + 1e-9);
    h -= p * Math.log(p + 1e-9);
  }
  return h;
}

/** routingEntropy of a usage counter, which is then zeroed (the seed's get_routing_entropy; MoELayer.usage). */
export function takeRoutingEntropy(usage: Float64Array): number {
  const h = routingEntropy(usage);
  usage.fill(0);
  return h;
}

/**
 * torch.linalg.eigvalsh semantics on a (possibly non-symmetric) [N, N] matrix: only the LOWER
 * triangle is read (A_ij for i >= j) and the upper one is taken as its mirror, so the result
 * is the spectrum of the symmetric matrix L + tril(L, -1)ᵀ. The seed calls eigvalsh on the
 * row-softmaxed S, which is not symmetric; this replicates what that call computes.
 * Cyclic Jacobi rotations in float64; eigenvalues ascending (as eigvalsh).
 */
export function eigvalshLower(a: ArrayLike<number>, n: number, options: { maxSweeps?: number; tol?: number } = {}): Float64Array {
  checkSquare(a, n, 'eigvalshLower');
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      m[i * n + j] = a[i * n + j]!;
      m[j * n + i] = a[i * n + j]!;
    }
  }
  const maxSweeps = options.maxSweeps ?? 100;
  const tol = options.tol ?? 1e-15;
  let norm = 0;
  for (let i = 0; i < n * n; i++) norm += m[i]! * m[i]!;
  for (let sweep = 0; sweep < maxSweeps; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += m[p * n + q]! * m[p * n + q]!;
    if (off <= tol * tol * Math.max(norm, 1e-300)) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const app = m[p * n + p]!;
        const aqq = m[q * n + q]!;
        // rotation angle zeroing m[p][q] (Golub & Van Loan, sym.schur2)
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
      }
    }
  }
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = m[i * n + i]!;
  return out.sort();
}

/** The seed's figure 9 data: eigvalsh sorted descending, and |lambda| normalised to sum 1 (reference 1/N). */
export function eigenspectrum(s: ArrayLike<number>, n: number): { eigenvalues: number[]; normalizedAbs: number[]; reference: number } {
  const ev = [...eigvalshLower(s, n)].reverse();
  const total = ev.reduce((acc, v) => acc + Math.abs(v), 0);
  return { eigenvalues: ev, normalizedAbs: ev.map((v) => (total > 0 ? Math.abs(v) / total : 0)), reference: 1 / n };
}

function checkSquare(a: ArrayLike<number>, n: number, where: string): void {
  if (!(Number.isInteger(n) && n >= 1) || a.length !== n * n) {
    throw new RangeError(`${where}: expected a row-major [${n}, ${n}] matrix (${n * n} elements), got ${a.length} elements`);
  }
}
