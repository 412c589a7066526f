/** The bundled default corpus (data/corpus/default.txt, built from WordNet 3.0). */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'data', 'corpus');
const corpus = join(dir, 'default.txt');

describe('default corpus', () => {
  it('exists and is under 4 MB', () => {
    expect(existsSync(corpus)).toBe(true);
    const { size } = statSync(corpus);
    expect(size).toBeGreaterThan(0);
    expect(size).toBeLessThan(4 * 1024 * 1024);
  });

  it('is valid UTF-8 with more than 10,000 non-empty, unique lines', () => {
    const bytes = readFileSync(corpus);
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // throws on invalid UTF-8
    expect(text.endsWith('\n')).toBe(true);
    const lines = text.slice(0, -1).split('\n');
    expect(lines.length).toBeGreaterThan(10_000);
    expect(lines.filter((l) => l.trim() === '')).toEqual([]);
    expect(new Set(lines).size).toBe(lines.length);
  });

  it('ships with its licence and provenance', () => {
    expect(readFileSync(join(dir, 'LICENSE-WordNet'), 'utf8')).toContain('WordNet 3.0 Copyright 2006 by Princeton University');
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
    expect(existsSync(join(dir, 'build.mjs'))).toBe(true);
  });
});
