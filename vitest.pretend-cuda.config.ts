import { defineConfig } from 'vitest/config';

// `npm run test:cuda-pretend`: the [cuda] tests on a pretend device (test/helpers/pretend-cuda-setup.ts), so that
// their own code runs on a machine without a GPU. It checks the tests, not the CUDA kernels.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 120_000,
    globalSetup: ['test/global-tmp.ts'],
    setupFiles: ['test/helpers/pretend-cuda-setup.ts'],
    env: { CLOZE_PRETEND_CUDA: '1' },
  },
});
