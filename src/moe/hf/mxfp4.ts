// MXFP4 (OCP Microscaling, FP4 E2M1 elements with an E8M0 scale per block of 32), as GPT-OSS
// checkpoints store their expert weights: `<name>_blocks` u8 [..., G, 16] (two FP4 codes per
// byte, the LOW nibble first) and `<name>_scales` u8 [..., G] (value = 2^(scale − 127)).
// Dequantised: [..., G·32] with element 32·g + j = fp4(code j of block g) · 2^(scale_g − 127).
// GPT-OSS stores gate_up_proj_blocks as [E, 2I, H/32, 16] and down_proj_blocks as [E, H, I/32, 16],
// i.e. [E, out, in] after dequantisation (transformers transposes them to [E, in, out] for use).

/** The 16 FP4 E2M1 values by code: sign bit 3, exponent bits 2..1 (bias 1), mantissa bit 0. */
export const FP4_E2M1_VALUES: readonly number[] = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

/** Decode one FP4 E2M1 code (0..15) from its bits (equals FP4_E2M1_VALUES[code]). */
export function fp4E2M1(code: number): number {
  const sign = code & 8 ? -1 : 1;
  const exp = (code >> 1) & 3;
  const man = code & 1;
  return sign * (exp === 0 ? man * 0.5 : (1 + man / 2) * 2 ** (exp - 1));
}

/** E8M0 scale byte -> 2^(s − 127); 255 is NaN. */
export function e8m0(s: number): number {
  return s === 255 ? NaN : 2 ** (s - 127);
}

/**
 * Dequantise MXFP4 blocks [..., G, B] (u8, B bytes = 2B values per block) with scales [..., G] (u8)
 * into [..., G·2B] float values (exact in f32: |value| = fp4 · 2^k).
 */
export function dequantizeMxfp4(
  blocks: ArrayLike<number>,
  blocksShape: readonly number[],
  scales: ArrayLike<number>,
  scalesShape: readonly number[],
  out?: Float32Array | Float64Array,
): { data: Float32Array | Float64Array; shape: number[] } {
  if (blocksShape.length < 2 || scalesShape.length !== blocksShape.length - 1 || scalesShape.some((d, i) => d !== blocksShape[i])) {
    throw new RangeError(
      `dequantizeMxfp4: scales shape [${scalesShape.join(', ')}] must equal blocks shape [${blocksShape.join(', ')}] without its last axis`,
    );
  }
  const B = blocksShape[blocksShape.length - 1]!;
  const rows = scalesShape.reduce((p, d) => p * d, 1);
  if (blocks.length !== rows * B || scales.length !== rows) {
    throw new RangeError(
      `dequantizeMxfp4: data lengths (${blocks.length}, ${scales.length}) do not match shapes [${blocksShape.join(', ')}], [${scalesShape.join(', ')}]`,
    );
  }
  const data = out ?? new Float32Array(rows * 2 * B);
  if (data.length !== rows * 2 * B) throw new RangeError(`dequantizeMxfp4: out has ${data.length} elements, expected ${rows * 2 * B}`);
  for (let r = 0; r < rows; r++) {
    const s = e8m0(scales[r]!);
    for (let b = 0; b < B; b++) {
      const byte = blocks[r * B + b]!;
      if (!(byte >= 0 && byte <= 255)) throw new RangeError(`dequantizeMxfp4: block byte ${byte} at ${r * B + b} is not in [0, 255]`);
      data[r * 2 * B + 2 * b] = FP4_E2M1_VALUES[byte & 15]! * s;
      data[r * 2 * B + 2 * b + 1] = FP4_E2M1_VALUES[byte >> 4]! * s;
    }
  }
  const lead = blocksShape.slice(0, -2);
  return { data, shape: [...lead, blocksShape[blocksShape.length - 2]! * 2 * B] };
}
