/**
 * A setting added after a checkpoint was saved is compared on resume with the behaviour the checkpoint had
 * (`before`), but only where that behaviour was real: randomTokens existed for MLM runs only, and ELECTRA never drew
 * random tokens, so old image or ELECTRA checkpoints must still resume.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig, resumeFields } from '../src/tasks/config.js';
import { checkResumeSettings } from '../src/train/run-dir.js';

const dirs: string[] = [];
afterEach(() => { for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true }); });

/** A checkpoint directory whose saved run settings are `cfg` less the fields that did not exist then. */
function oldCheckpoint(cfg: Record<string, unknown>, missing: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'cloze-resume-'));
  dirs.push(dir);
  const run = Object.fromEntries(Object.entries(cfg).filter(([k]) => !missing.includes(k)));
  writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify({ extra: { run } }));
  return dir;
}

describe('resume across a newer setting (randomTokens)', () => {
  it('an old mim checkpoint resumes (it never drew random tokens)', () => {
    const cfg = resolveConfig({ task: 'mim', method: 'mae' });
    const now = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
    const dir = oldCheckpoint(now, ['randomTokens', 'evalMaskRatio']);
    expect(() => checkResumeSettings(dir, now, undefined, resumeFields(cfg))).not.toThrow();
  });

  it('an old ELECTRA checkpoint resumes (no random replacements in its masking)', () => {
    const cfg = resolveConfig({ task: 'mlm', objective: 'electra', preset: 'electra-mini' });
    const now = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
    const dir = oldCheckpoint(now, ['randomTokens']);
    expect(() => checkResumeSettings(dir, now, undefined, resumeFields(cfg))).not.toThrow();
  });

  it('an old MLM checkpoint is refused under the new default, naming the field, and resumes with non-special', () => {
    const cfg = resolveConfig({ task: 'mlm', preset: 'bert-tiny' });
    const now = JSON.parse(JSON.stringify(cfg)) as Record<string, unknown>;
    const dir = oldCheckpoint(now, ['randomTokens']);
    expect(() => checkResumeSettings(dir, now, undefined, resumeFields(cfg))).toThrow(/randomTokens "non-special"/);
    const old = resolveConfig({ task: 'mlm', preset: 'bert-tiny', randomTokens: 'non-special' });
    expect(() => checkResumeSettings(dir, JSON.parse(JSON.stringify(old)) as Record<string, unknown>, undefined, resumeFields(old))).not.toThrow();
  });
});
