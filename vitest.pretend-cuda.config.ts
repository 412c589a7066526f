import { defineConfig, mergeConfig } from 'vitest/config';
import base from './vitest.config.js';

// `npm run test:cuda-pretend`: the [cuda] tests on a pretend device (test/helpers/pretend-cuda-setup.ts), so that
// their own code runs on a machine without a GPU. It checks the tests, not the CUDA kernels.
export default mergeConfig(base, defineConfig({
  test: {
    setupFiles: ['test/helpers/pretend-cuda-setup.ts'],
    env: { CLOZE_PRETEND_CUDA: '1' },
  },
}));
