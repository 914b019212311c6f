// Run a function with an environment variable set, restoring it afterwards (the MoE execution
// plan reads MOEKIT_MOE_PATH when a layer plans and at each standalone op).

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

/** fn() with the backend's MoE kernels allowed where they cover the work, or the reference composition only (MOEKIT_MOE_PATH). */
export function withKernels<T>(on: boolean, fn: () => T): T {
  return withEnv('MOEKIT_MOE_PATH', on ? 'auto' : 'reference', fn);
}
