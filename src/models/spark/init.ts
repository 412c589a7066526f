/**
 * The initialisers SparK's official code uses for densify and the light
 * decoder (keyu-tian/SparK, pretrain/decoder.py `LightDecoder.initialize` and
 * pretrain/spark.py), each drawn from a seeded Rng:
 * - decoder Conv2d weights: timm's `trunc_normal_(std=.02)`, whose bounds a=−2, b=2
 *   are absolute, so at std 0.02 (100σ) it is in effect an untruncated N(0, 0.02²);
 * - decoder ConvTranspose2d weights: `ConvTranspose2d` is not a subclass of
 *   `Conv2d` in PyTorch, so it falls to the `kaiming_normal_(mode='fan_out',
 *   nonlinearity='relu')` branch: N(0, 2/fan_out), untruncated, where torch takes
 *   fan_out = weight.size(0)·k² (the input width, for a transposed conv's [in, out, k, k]);
 * - mask tokens: `trunc_normal_(std=.02, a=−.02, b=.02)`, truncated at ±1σ;
 * - densify projections are not touched by any initialiser, so they keep
 *   torch's Conv2d default: weight and bias U(±1/√fan_in), fan_in = in·k².
 */
export { normal, truncNormalAbs, uniform } from '../../nn/init.js';
