// One rank of test/distributed.test.ts's check of MpiCommunicator's host copies (--distributed-backend mpi on
// cuda), started by `mpirun -np 2 node mpi-stage-child.mjs <result.json>`. No GPU is needed: a stand-in tensor
// that says it is on cuda wraps a CPU tensor, so the communicator takes its staging path (to('cpu'), the MPI sum of
// the host copy, copyFrom back) while MPI reduces real host memory. Rank 0 writes what it saw to the result file.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { MpiCommunicator } = await import(join(root, 'dist', 'src', 'distributed', 'communicator.js'));
const { native } = await import(join(root, 'dist', 'src', 'native', 'loader.js'));

const comm = new MpiCommunicator(30_000);
const calls = { to: 0, copyFrom: 0 };
// What the communicator reads of a cuda tensor; anything else would reach the addon and fail there.
const onCuda = (real) => ({
  device: 'cuda',
  dtype: real.dtype,
  shape: real.shape,
  to(device) {
    if (device !== 'cpu') throw new Error(`stand-in: to(${device})`);
    calls.to++;
    return real.clone();
  },
  copyFrom(src) {
    calls.copyFrom++;
    if (src.device !== 'cpu' || src.dtype !== real.dtype) throw new Error(`stand-in: copyFrom a ${src.device} ${src.dtype} tensor`);
    real.copyFrom(src);
  },
});
const make = (dtype, values) => {
  const t = native().empty(dtype, [values.length], 'cpu');
  t.write(dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values));
  return t;
};
const r = comm.rank;
// bfloat16: 1 + 2^-8 is not a bfloat16 (it rounds to 1 on the way in); 1 + 2^-7 is. Two ranks' 1 + 2^-7 sum to
// 2 + 2^-6, exact in float32 and in bfloat16; rank-dependent values check that the sum is the ranks' sum.
const f32 = make('float32', [1 + r, 0.25 * (r + 1), -3]);
const bf = make('bfloat16', [1 + 2 ** -7, 2 * (r + 1), 0.5]);
const host = make('float32', [r, 1, 2]);
comm.allreduceSumAll([onCuda(f32), onCuda(bf), host]);
const pend = make('float32', [10 * (r + 1), 1]);
const p = comm.startAllreduceSum(onCuda(pend));
while (!p.test()) { /* Open MPI progresses inside MPI calls: test() drives it */ }
p.wait();
const pend2 = make('float32', [r + 0.5]);
const p2 = comm.startAllreduceSum(onCuda(pend2));
p2.wait();
const result = {
  f32: Array.from(f32.read()), bf: Array.from(bf.read()), bfDtype: bf.dtype, host: Array.from(host.read()),
  pend: Array.from(pend.read()), pend2: Array.from(pend2.read()), calls,
};
if (r === 0) writeFileSync(process.argv[2], JSON.stringify(result));
comm.finalize();
