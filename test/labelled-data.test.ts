/** Labelled fine-tuning data: JSONL/CSV/TSV readers, label order, the stratified split and every malformed-input error. */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { compareCodePoints, labelNames, perClassSubset, readLabelledFile, stratifiedSplit, writeLabelledJsonl } from '../src/data/labelled.js';

const dir = join(import.meta.dirname, 'fixtures', 'labelled');
const fx = (name: string): string => join(dir, name);

describe('readLabelledFile', () => {
  it('reads JSONL rows, skipping blank lines, labels kept as strings', () => {
    const { examples, pair } = readLabelledFile(fx('reviews.jsonl'));
    expect(pair).toBe(false);
    expect(examples).toHaveLength(5);
    expect(examples[0]).toEqual({ text: 'a warm and funny film', label: 'positive' });
    expect(examples[4]!.text).toBe('ünïcödé and emoji 🎬 are fine');
    expect(examples.every((e) => e.textPair === undefined)).toBe(true);
  });

  it('keeps integer labels as strings: 2 and "2" are one class', () => {
    const { examples } = readLabelledFile(fx('integer-labels.jsonl'));
    expect(examples.map((e) => e.label)).toEqual(['10', '2', '2', '10', '-1', '-1']);
  });

  it('reads JSONL sentence pairs', () => {
    const { examples, pair } = readLabelledFile(fx('pairs.jsonl'));
    expect(pair).toBe(true);
    expect(examples[1]).toEqual({ text: 'hammer', textPair: 'a large body of salt water', label: 'false' });
  });

  it('reads CSV with RFC 4180 quoting: doubled quotes, commas and CRLF line breaks inside quotes, other columns ignored', () => {
    const { examples, pair } = readLabelledFile(fx('messages.csv'));
    expect(pair).toBe(false);
    expect(examples).toEqual([
      { text: 'WIN a "free" prize, now', label: 'spam' },
      { text: 'lunch at noon?\r\nsee you there', label: 'ham' },
      { text: 'cheap pills', label: 'spam' },
      // A quote inside an unquoted field is a character, as pandas reads GLUE's TSVs.
      { text: 'the 5" floppy is in the drawer', label: 'ham' },
    ]);
  });

  it('reads TSV sentence pairs, a quoted field holding a tab', () => {
    const { examples, pair } = readLabelledFile(fx('pairs.tsv'));
    expect(pair).toBe(true);
    expect(examples).toHaveLength(4);
    expect(examples[2]).toEqual({ text: 'sea', textPair: 'a large body\tof salt water', label: '1' });
  });

  it('lets a test file have a class of one example when asked', () => {
    expect(readLabelledFile(fx('singleton.jsonl'), { minPerClass: 1 }).examples).toHaveLength(3);
  });

  const errors: [string, RegExp][] = [
    ['missing-text.jsonl', /missing-text\.jsonl:3 field "text" but received undefined/],
    ['missing-text.csv', /missing-text\.csv:4 field "text" but received ''/],
    ['missing-label.jsonl', /missing-label\.jsonl:2 field "label" but received undefined/],
    ['float-label.jsonl', /float-label\.jsonl:2 field "label" but received 1\.5/],
    ['no-label-column.csv', /column "label" for .*no-label-column\.csv:1 \(header\)/],
    ['bad-json.jsonl', /JSON object for .*bad-json\.jsonl:2 but received invalid JSON/],
    ['singleton.jsonl', /at least 2 examples of each class for .*singleton\.jsonl:3 field "label" but received 1 of class 'b'/],
    ['empty.jsonl', /at least one labelled row for .*empty\.jsonl but received an empty file/],
    ['empty.csv', /header naming text and label for .*empty\.csv:1 but received an empty file/],
    ['header-only.csv', /at least one labelled row for .*header-only\.csv but received an empty file/],
    ['invalid-utf8.jsonl', /valid UTF-8 for .*invalid-utf8\.jsonl:3 but received invalid bytes/],
    ['invalid-utf8.csv', /valid UTF-8 for .*invalid-utf8\.csv:4 but received invalid bytes/],
    ['pair-missing.jsonl', /text_pair on every row .*pair-missing\.jsonl:2 field "text_pair" but received none \(3 of 4 rows/],
    ['pair-missing.csv', /text_pair on every row .*pair-missing\.csv:4 field "text_pair" but received none \(3 of 4 rows/],
    ['extra-field.csv', /2 fields \(as in the header\) for .*extra-field\.csv:3 but received 3/],
    ['unclosed-quote.csv', /closing quote for .*unclosed-quote\.csv:3 but received the end of the file/],
  ];
  for (const [name, msg] of errors) {
    it(`rejects ${name}, naming the file, the line and the field`, () => {
      expect(() => readLabelledFile(fx(name))).toThrow(msg);
    });
  }

  it('rejects an unknown extension and a missing file', () => {
    expect(() => readLabelledFile(fx('reviews.json'))).toThrow(/\.jsonl, \.csv, \.tsv file for labelled data but received '.*reviews\.json'/);
    expect(() => readLabelledFile(fx('absent.csv'))).toThrow(/readable file for labelled data but received '.*absent\.csv' \(ENOENT\)/);
  });
});

describe('labelNames', () => {
  it('orders integer labels numerically, negative and large ones included', () => {
    const ex = ['10', '2', '-1', '2', '900719925474099312'].map((label) => ({ label }));
    expect(labelNames(ex)).toEqual(['-1', '2', '10', '900719925474099312']);
  });

  it('orders other labels by code point, not by UTF-16 unit', () => {
    // U+FF5E (one unit, 0xFF5E) sorts before U+1F600 (surrogates 0xD83D…) by code point,
    // after it by UTF-16 unit; a mix of digits and words is not numeric.
    const ex = ['😀', '～', 'b', 'B', '10', '9'].map((label) => ({ label }));
    expect(labelNames(ex)).toEqual(['10', '9', 'B', 'b', '～', '😀']);
    expect(['😀', '～'].sort()).toEqual(['😀', '～']); // what a plain sort would give
    expect(compareCodePoints('ab', 'a')).toBeGreaterThan(0);
    expect(compareCodePoints('a', 'a')).toBe(0);
  });
});

describe('stratifiedSplit', () => {
  const examples = [
    ...Array.from({ length: 50 }, (_, i) => ({ text: `a${i}`, label: 'a' })),
    ...Array.from({ length: 20 }, (_, i) => ({ text: `b${i}`, label: 'b' })),
    ...Array.from({ length: 2 }, (_, i) => ({ text: `c${i}`, label: 'c' })),
  ];

  it('splits each class by the fraction, at least one example on each side, in input order', () => {
    const { train, test } = stratifiedSplit(examples, 0.2, 7);
    const count = (xs: typeof examples, l: string): number => xs.filter((e) => e.label === l).length;
    expect([count(test, 'a'), count(test, 'b'), count(test, 'c')]).toEqual([10, 4, 1]);
    expect([count(train, 'a'), count(train, 'b'), count(train, 'c')]).toEqual([40, 16, 1]);
    expect(new Set([...train, ...test].map((e) => e.text)).size).toBe(examples.length);
    const order = (xs: typeof examples): number[] => xs.map((e) => examples.indexOf(e));
    expect(order(train)).toEqual([...order(train)].sort((x, y) => x - y));
    expect(order(test)).toEqual([...order(test)].sort((x, y) => x - y));
  });

  it('is seeded: the same seed gives the same split, another seed another one', () => {
    const a = stratifiedSplit(examples, 0.2, 1).test.map((e) => e.text);
    expect(stratifiedSplit(examples, 0.2, 1).test.map((e) => e.text)).toEqual(a);
    expect(stratifiedSplit(examples, 0.2, 2).test.map((e) => e.text)).not.toEqual(a);
  });

  it('rejects a fraction outside (0, 1) and a class of one', () => {
    expect(() => stratifiedSplit(examples, 0, 1)).toThrow(/\(0, 1\) for testFraction but received 0/);
    expect(() => stratifiedSplit(examples, 1, 1)).toThrow(/testFraction/);
    expect(() => stratifiedSplit([{ label: 'x' }, { label: 'x' }, { label: 'y' }], 0.5, 1)).toThrow(/at least 2 examples of each class .* 1 of class 'y'/);
  });
});

describe('perClassSubset and writeLabelledJsonl', () => {
  const rows = Array.from({ length: 90 }, (_, i) => ({ text: `t${i}`, label: i % 3 === 0 ? 'a' : 'b', ...(i % 2 ? { textPair: `p${i}` } : {}) }));

  it('draws about n examples in proportion to the classes, seeded, in the split order', () => {
    const s = perClassSubset(rows, 30, 7);
    expect(s.filter((e) => e.label === 'a')).toHaveLength(10);
    expect(s.filter((e) => e.label === 'b')).toHaveLength(20);
    expect(s.map((e) => rows.indexOf(e))).toEqual([...s.map((e) => rows.indexOf(e))].sort((x, y) => x - y));
    expect(perClassSubset(rows, 30, 7)).toEqual(s);
    expect(perClassSubset(rows, 30, 8)).not.toEqual(s);
    expect(perClassSubset(rows, 0, 7)).toEqual(rows);
    expect(perClassSubset(rows, 1, 7).map((e) => e.label).sort()).toEqual(['a', 'b']);
  });

  it('writes JSONL that readLabelledFile reads back', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'cloze-labelled-')), 'x.jsonl');
    const pairs = rows.slice(0, 6).map((e) => ({ ...e, textPair: e.textPair ?? 'q' }));
    writeLabelledJsonl(file, pairs);
    expect(readLabelledFile(file).examples).toEqual(pairs);
  });
});
