export { Profiler, withProfile, JS_OVERHEAD, PROFILER_OWN, type FamilyStats, type ProfileReport, type ProfilerOptions } from './profiler.js';
export { profileLabel, currentLabels } from './state.js';
export { gemmFlops, classifyCall, type CallWork, type FamilyKind } from './families.js';
