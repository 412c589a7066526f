/** CLI flags from settings tables: kebab-case names, grouped by section in --help, no yargs defaults. */
import type { Argv } from 'yargs';
import type { ConfigSection, FieldSpec } from '../train/config.js';

export function flagName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function sectionFlags(y: Argv, sections: readonly ConfigSection[]): Argv {
  for (const section of sections) {
    for (const [name, s] of Object.entries(section.fields) as Array<[string, FieldSpec]>) {
      const type = s.kind === 'boolean' ? 'boolean' : s.kind === 'number' || s.kind === 'integer' || s.kind === 'number[2]' ? 'number' : 'string';
      // No yargs default: a flag the user did not give must not override a settings file.
      y.option(flagName(name), {
        type,
        array: s.kind === 'number[2]' || s.kind === 'string[]',
        choices: s.choices as string[] | undefined,
        describe: s.default === null ? s.describe : `${s.describe} (default: ${JSON.stringify(s.default)})`,
      });
    }
    y.group(Object.keys(section.fields).map(flagName), `${section.title}:`);
  }
  return y;
}

/** The settings given as flags, by field name. */
export function givenFlags(args: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const name of fields) {
    const v = args[flagName(name)];
    if (v !== undefined) out[name] = v;
  }
  return out;
}
