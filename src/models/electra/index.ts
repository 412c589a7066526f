export * from './model.js';
export * from './presets.js';
export * from './hf-config.js';
