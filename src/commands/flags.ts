/** CLI flags from settings tables: kebab-case names, grouped by section in --help, no yargs defaults. */
import type { Argv } from 'yargs';
import type { ConfigSection, FieldSpec } from '../train/config.js';

export function flagName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

export function sectionFlags(y: Argv, sections: readonly ConfigSection[]): Argv {
  for (const section of sections) {
    for (const [name, s] of Object.entries(section.fields) as Array<[string, FieldSpec]>) {
      const numeric = s.kind === 'number' || s.kind === 'number?' || s.kind === 'integer' || s.kind === 'number[2]';
      // Numbers are parsed here, not by yargs, which turns '--lr abc' into NaN: what the user typed must reach the
      // error message ("… but received \"abc\"").
      const type = s.kind === 'boolean' ? 'boolean' : numeric ? undefined : 'string';
      // No yargs default: a flag the user did not give must not override a settings file.
      y.option(flagName(name), {
        type,
        ...(numeric ? { coerce: (v: unknown) => (Array.isArray(v) ? v.map(toNumber) : toNumber(v)), requiresArg: true } : {}),
        array: s.kind === 'number[2]' || s.kind === 'string[]',
        choices: s.choices as string[] | undefined,
        describe: s.default === null ? s.describe : `${s.describe} (default: ${JSON.stringify(s.default)})`,
      });
    }
    y.group(Object.keys(section.fields).map(flagName), `${section.title}:`);
  }
  return y;
}

/** A flag's text as a number when all of it is one ('1e-3', '0x10' excepted), else the text itself. */
export function toNumber(v: unknown): unknown {
  if (typeof v !== 'string') return v;
  const t = v.trim();
  return /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(t) || /^[+-]?Infinity$/.test(t) ? Number(t) : v;
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
