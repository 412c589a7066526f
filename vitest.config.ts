import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native kernels use their own thread pool; one test file at a time keeps
    // the 2-core CI machine from oversubscribing.
    fileParallelism: false,
    testTimeout: 120_000,
    // A temporary directory per run, removed at its end (test/global-tmp.ts).
    globalSetup: ['test/global-tmp.ts'],
  },
});
