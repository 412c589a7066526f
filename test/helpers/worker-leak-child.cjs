// Child process of test/worker-memory.test.ts (issue 14, section 4): worker
// runs must not leave native memory behind. The addon's block cache is
// process-wide; before the fix, blocks a worker's tensors freed stayed cached
// after the worker was gone (265 → 1,185 MiB RSS over six pretrainInWorker runs).
//
//   node worker-leak-child.cjs <addon.node> <dist index.js> <config.json>
//
// Prints one JSON line: per run, the bytes cached and the RSS after it.
'use strict';
const { Worker } = require('node:worker_threads');
const { pathToFileURL } = require('node:url');
const fs = require('node:fs');

const [addonPath, indexPath, configPath] = process.argv.slice(2);
const addon = require(addonPath);

// A worker that fills and frees 8 × 16 MiB of tensors: 128 MiB that go to the block cache.
const WORKER = `
  const addon = require(${JSON.stringify(addonPath)});
  const ts = [];
  for (let i = 0; i < 8; i++) { const t = addon.empty('float32', [4 << 20]); t.fill(1); ts.push(t); }
  for (const t of ts) t.dispose();
  require('node:worker_threads').parentPort.postMessage(addon.cachedBytes());
`;

const runRaw = () =>
  new Promise((resolve, reject) => {
    const w = new Worker(WORKER, { eval: true });
    let cachedInWorker = -1;
    w.on('message', (m) => (cachedInWorker = m));
    w.on('error', reject);
    w.on('exit', () => resolve(cachedInWorker));
  });

// RSS sampled 60 ms after a run (3 collections, 20 ms apart) once read 50.7 MiB
// above the first run's on CI, against the test's 48 MiB, and about 0 here: a
// worker's isolate teardown and the allocator's release of its pages may still
// be under way that soon. Five collections over half a second give them time,
// so the bound, unchanged, measures what outlives a run.
const settle = async () => {
  for (let i = 0; i < 5; i++) {
    global.gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
};

(async () => {
  const raw = [];
  for (let i = 0; i < 6; i++) {
    const inWorker = await runRaw();
    await settle();
    raw.push({ inWorker, cached: addon.cachedBytes(), rss: process.memoryUsage().rss });
  }
  const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
  const runs = [];
  if (config.runs > 0) {
    const { pretrainInWorker } = await import(pathToFileURL(indexPath).href);
    for (let i = 0; i < config.runs; i++) {
      const r = await pretrainInWorker({ ...config.run, out: `${config.out}-${i}` });
      await settle();
      runs.push({ step: r.step, cached: addon.cachedBytes(), live: addon.liveBytes(), rss: process.memoryUsage().rss });
    }
  }
  process.stdout.write(JSON.stringify({ raw, runs }) + '\n');
})().catch((e) => {
  process.stderr.write(String(e && e.stack) + '\n');
  process.exit(1);
});
