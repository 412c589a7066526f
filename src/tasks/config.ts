/**
 * The run settings of `cloze pretrain`, section by section: the shared one,
 * then each task's own (text for mlm; images for mim and spark; mim; spark).
 * A field set for a task that does not read its section is an error naming
 * the task that does. The resolved settings are flat (every field of every
 * section, defaults filled), so flags, run.json files and the settings saved
 * in checkpoints use one name per field, and saved settings are valid input.
 */
import { ClozeError } from '../errors.js';
import { readSettingsFile, resolveSection, SHARED_FIELDS, SHARED_SECTION, type ConfigOf, type ConfigSection, type FieldSpec } from '../train/config.js';
import { IMAGE_FIELDS, IMAGE_SECTION } from '../train/image-setup.js';
import { MIM_FIELDS, MIM_SECTION } from './mim/config.js';
import { MLM_FIELDS, MLM_SECTION } from './mlm/config.js';
import { SPARK_FIELDS, SPARK_SECTION } from './spark/config.js';

/** Every section, in the order of --help. */
export const RUN_SECTIONS: readonly ConfigSection[] = [SHARED_SECTION, MLM_SECTION, IMAGE_SECTION, MIM_SECTION, SPARK_SECTION];

type AllFields = typeof SHARED_FIELDS & typeof MLM_FIELDS & typeof IMAGE_FIELDS & typeof MIM_FIELDS & typeof SPARK_FIELDS;

/** Every field of every section, by name (names are unique across sections). */
export const RUN_FIELDS = Object.assign({}, ...RUN_SECTIONS.map((s) => s.fields)) as AllFields;

export type RunFieldName = keyof AllFields;
export type RunConfig = ConfigOf<AllFields>;
export type TaskName = (typeof SHARED_FIELDS)['task']['choices'][number];

const sectionOf = new Map<string, ConfigSection>(RUN_SECTIONS.flatMap((s) => Object.keys(s.fields).map((f) => [f, s] as const)));

/** Unknown fields and wrongly typed values are errors naming the field; returns the task the settings choose. */
function checkFields(partial: Record<string, unknown>, where: string): TaskName {
  if (partial === null || typeof partial !== 'object' || Array.isArray(partial)) {
    throw new ClozeError('E_VALUE', `${where}: Expected an object of run settings but received ${JSON.stringify(partial)}`);
  }
  for (const key of Object.keys(partial)) {
    if (!sectionOf.has(key)) {
      throw new ClozeError('E_VALUE', `${where}: Expected a known setting for ${key} but received an unknown field (known: ${Object.keys(RUN_FIELDS).join(', ')})`);
    }
  }
  for (const s of RUN_SECTIONS) resolveSection(s.fields, partial, where);
  return (partial.task ?? SHARED_FIELDS.task.default) as TaskName;
}

/**
 * Fills defaults and validates; `where` names the source in errors (a file path or "options"). A field of a section
 * the task does not read is refused when it is set to anything but its default (a checkpoint's saved settings,
 * which hold every field at its default, stay valid input).
 */
export function resolveConfig(partial: Record<string, unknown>, where = 'options'): RunConfig {
  const task = checkFields(partial, where);
  for (const [key, v] of Object.entries(partial)) {
    const s = sectionOf.get(key)!;
    if (s.tasks.length > 0 && !s.tasks.includes(task) && v !== undefined && JSON.stringify(v) !== JSON.stringify((s.fields[key] as FieldSpec).default)) {
      throw new ClozeError('E_VALUE', `${where}: Expected a setting of task ${task} for ${key} but received a setting of task ${s.tasks.join(' or ')} (${s.title}); set task to ${s.tasks.join(' or ')}, or drop ${key}`);
    }
  }
  return Object.assign({}, ...RUN_SECTIONS.map((s) => resolveSection(s.fields, partial, where))) as RunConfig;
}

/**
 * Reads a run.json file: its raw settings, each field checked, so that presets' recipes can still fill the unset
 * ones. Whether a field suits the task is checked on the merged settings (a file may leave the task to a flag).
 */
export function readRunFile(path: string): Record<string, unknown> {
  const parsed = readSettingsFile(path);
  checkFields(parsed, path);
  return parsed;
}

/** Reads and validates a run.json file, defaults filled. */
export function loadRunConfig(path: string, overrides: Record<string, unknown> = {}): RunConfig {
  return resolveConfig({ ...readRunFile(path), ...overrides }, path);
}

/**
 * The fields a resume compares, with the `before` value of a setting newer than the checkpoint kept only where that
 * older behaviour was real for this run: a section the task reads (an old image run never drew random text tokens),
 * and for randomTokens, the objective that draws them (ELECTRA's generator masking has no random replacements).
 */
export function resumeFields(cfg: RunConfig): Record<string, { default: unknown; before?: unknown }> {
  const out: Record<string, { default: unknown; before?: unknown }> = {};
  for (const s of RUN_SECTIONS) {
    const reads = s.tasks.length === 0 || s.tasks.includes(cfg.task as TaskName);
    for (const [k, f] of Object.entries(s.fields) as Array<[string, { default: unknown; before?: unknown }]>) {
      const applies = reads && !(k === 'randomTokens' && (cfg as Record<string, unknown>).objective === 'electra');
      out[k] = applies || !('before' in f) ? f : { default: f.default };
    }
  }
  return out;
}
