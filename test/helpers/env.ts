// Run a function with an environment variable set, restoring it afterwards (the fused MoE
// path reads its switches from process.env at each call).

/** fn() with process.env[name] = value; the previous value (or its absence) comes back after. */
export function withEnv<T>(name: string, value: string, fn: () => T): T {
  const prev = process.env[name];
  process.env[name] = value;
  try {
    return fn();
  } finally {
    if (prev === undefined) delete process.env[name];
    else process.env[name] = prev;
  }
}

/** fn() with the fused native MoE path on or off (MOEKIT_MOE_FUSED). */
export function withFused<T>(on: boolean, fn: () => T): T {
  return withEnv('MOEKIT_MOE_FUSED', on ? '1' : '0', fn);
}
