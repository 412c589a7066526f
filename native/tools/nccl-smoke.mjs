// The NCCL path's smoke test for a GPU machine (gpu-check.sh's train step runs it under `mpirun -np N`, N = 1
// there): joins the ranks in an NCCL communicator (rank 0's unique id over MPI), SUM-all-reduces a cuda float32
// and a bfloat16 tensor in place on the trainer's stream, and checks every element against N × its value.
// Uses the compiled dist/ and the cuda addon (CLOZE_DEVICE=cuda). Exit 0 and "nccl smoke: ok …" when it passed.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { native } = await import(join(root, 'dist', 'src', 'native', 'loader.js'));
const { MpiCommunicator, NcclCommunicator, SingleProcess } = await import(join(root, 'dist', 'src', 'distributed', 'index.js'));

const a = native().ncclAvailable();
console.log(`nccl: ${JSON.stringify(a)}`);
if (!a.available) {
  console.log(`nccl smoke: NCCL is not usable here (${a.reason})`);
  process.exit(1);
}
// Without MPI in the addon only one rank can join (no way to pass the id), which is the smoke's world size 1.
const host = native().mpiAvailable().available ? new MpiCommunicator(60_000) : new SingleProcess();
const comm = new NcclCommunicator(host, 60_000);
const n = 4099; // not a multiple of any chunk size
const values = Float32Array.from({ length: n }, (_, i) => ((i % 97) - 48) / 8); // exact in bfloat16 too, and N × them
let bad = 0;
for (const dtype of ['float32', 'bfloat16']) {
  const cpu = native().fromTypedArray(values, [n]);
  const f32 = cpu.to('cuda');
  // bfloat16 is a cuda dtype: cast there.
  const t = dtype === 'float32' ? f32 : f32.cast(dtype);
  comm.allreduceSumAll([t]);
  const got = t.read(); // bfloat16 comes back widened to float32
  for (let i = 0; i < n; i++) if (got[i] !== values[i] * comm.size) bad++;
  console.log(`nccl smoke: ${dtype} all-reduce of ${n} elements over ${comm.size} rank(s): ${bad === 0 ? 'ok' : `${bad} wrong so far`}`);
  for (const x of new Set([cpu, f32, t])) x.dispose();
}
comm.close();
host.finalize();
if (bad > 0) process.exit(1);
console.log(`nccl smoke: ok (NCCL ${a.version}, world size ${comm.size}, rank ${comm.rank})`);
