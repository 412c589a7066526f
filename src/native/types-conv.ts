import type { NativeTensor as N } from './types.js';

type Maybe = N | null;

/** Native dense convolution (native/src/binding/bind_conv.cc), NCHW. */
export interface ConvNative {
  /** x [B, Cin, H, W], weight [Cout, Cin/groups, kh, kw], bias [Cout] | null → [B, Cout, Ho, Wo]. */
  conv2d(x: N, weight: N, bias: Maybe, stride: number, padding: number, groups: number): N;
  conv2dBackward(
    grad: N, x: N, weight: N, stride: number, padding: number, groups: number,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
  /** x [B, Cin, H, W], weight [Cin, Cout/groups, kh, kw], bias [Cout] | null → [B, Cout, (H−1)·s − 2p + kh, …]. */
  convTranspose2d(x: N, weight: N, bias: Maybe, stride: number, padding: number, groups: number): N;
  convTranspose2dBackward(
    grad: N, x: N, weight: N, stride: number, padding: number, groups: number,
    needInput: boolean, needWeight: boolean, needBias: boolean,
  ): [Maybe, Maybe, Maybe];
}
