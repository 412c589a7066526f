/**
 * WordNet 3.0 data-file lines: the committed fixture (the licence header and
 * six real noun synsets, offsets renumbered to their byte positions), single
 * lines of each part of speech, and every malformed field.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LEX_FILES, lemmaText, parseDataLine, readWordNetData, splitGloss } from '../src/data/wordnet.js';

const fx = (name: string): string => join(import.meta.dirname, 'fixtures', 'wordnet', name);

describe('readWordNetData on the fixture data.noun', () => {
  const synsets = readWordNetData(fx('data.noun'));

  it('skips the licence header and reads every synset with its lexicographer file', () => {
    expect(synsets).toHaveLength(6);
    expect(synsets.map((s) => s.lexFile)).toEqual(['noun.Tops', 'noun.act', 'noun.artifact', 'noun.person', 'noun.artifact', 'noun.plant']);
    expect(synsets.every((s) => s.pos === 'n')).toBe(true);
  });

  it('reads offset, words, gloss, definition and examples', () => {
    const hammer = synsets[1]!;
    expect(hammer.offset).toBe(1930);
    expect(hammer.words).toEqual(['hammer', 'pound', 'hammering', 'pounding']);
    expect(hammer.definition).toBe('the act of pounding (delivering repeated heavy blows)');
    expect(hammer.examples).toEqual(['the sudden hammer of fists caught him off guard', 'the pounding of feet on the hallway']);
    expect(hammer.gloss.startsWith('the act of pounding (delivering repeated heavy blows); "the sudden')).toBe(true);
    expect(synsets[0]!.examples).toEqual([]);
  });

  it('reads a hexadecimal word count (0x12 words)', () => {
    const gizmo = synsets[2]!;
    expect(gizmo.words).toHaveLength(0x12);
    expect(gizmo.words.slice(0, 3)).toEqual(['doodad', 'doohickey', 'doojigger']);
    expect(gizmo.definition).toBe('something unspecified whose name is either forgotten or not known');
  });

  it('rejects a file whose offset is not the line\'s byte position', () => {
    expect(() => readWordNetData(fx('bad-offset.noun'))).toThrow(/byte offset 00001930 for .*bad-offset\.noun:31 field "synset_offset" but received '00001931'/);
  });

  it('rejects a missing file', () => {
    expect(() => readWordNetData(fx('data.verb'))).toThrow(/readable WordNet data file .* \(ENOENT\)/);
  });
});

describe('parseDataLine', () => {
  it('parses a verb line with its frames and an adjective with a position marker', () => {
    const verb = parseDataLine('00002325 29 v 01 respire 1 001 $ 00001740 v 0000 01 + 02 00 | undergo respiration  ', 'data.verb', 7);
    expect(verb).toMatchObject({ offset: 2325, lexFile: 'verb.body', pos: 'v', words: ['respire'], definition: 'undergo respiration' });
    const adj = parseDataLine('00020103 00 s 02 outback(a) 0 remote 0 000 | inaccessible and sparsely populated; "outback settlements"', 'data.adj', 3);
    expect(adj).toMatchObject({ lexFile: 'adj.all', pos: 's', words: ['outback', 'remote'], examples: ['outback settlements'] });
  });

  const good = '00001740 03 n 01 entity 0 001 ~ 00001930 n 0000 | that which exists';
  const cases: [string, RegExp][] = [
    [good.replace('00001740', '1740'), /8-digit offset for f:5 field "synset_offset" but received '1740'/],
    [good.replace(' 03 n', ' 45 n'), /2-digit number below 45 for f:5 field "lex_filenum" but received '45'/],
    [good.replace(' 03 n', ' 03 x'), /one of n, v, a, s, r for f:5 field "ss_type" but received 'x'/],
    [good.replace(' 03 n', ' 29 n'), /noun\.\* file for ss_type n for f:5 field "lex_filenum" but received '29 \(verb\.body\)'/],
    [good.replace(' n 01 ', ' n 0g '), /hexadecimal count above 0 for f:5 field "w_cnt" but received '0g'/],
    [good.replace('entity 0', 'entity z'), /hexadecimal digit for f:5 field "lex_id" but received 'z'/],
    [good.replace(' 001 ~', ' 002 ~'), /a value for f:5 field "pointer_symbol" but received 'the end of the line'/],
    [good.replace(' 001 ~', ' 1 ~'), /3-digit count for f:5 field "p_cnt" but received '1'/],
    [good.replace(' 0000 |', ' 00x0 |'), /4 hexadecimal digits for f:5 field "source\/target" but received '00x0'/],
    [good.replace(' 0000 |', ' 0000 extra |'), /" \| " after the pointers for f:5 field "gloss" but received 'extra'/],
    [good.replace(' | ', ' '), /" \| " before the gloss for f:5 field "gloss"/],
  ];
  for (const [line, msg] of cases) {
    it(`rejects ${JSON.stringify(line.slice(0, 48))}…, naming the line and the field`, () => {
      expect(() => parseDataLine(line, 'f', 5)).toThrow(msg);
    });
  }
});

describe('glosses and names', () => {
  it('splits a gloss at the first quoted example, keeping quotes inside the definition', () => {
    expect(splitGloss('a word meaning "yes"; also "no" in jest; "he said yes"; "no"')).toEqual({
      definition: 'a word meaning "yes"; also "no" in jest',
      examples: ['he said yes', 'no'],
    });
    expect(splitGloss('"only an example"')).toEqual({ definition: '', examples: ['only an example'] });
  });

  it('lemmaText and the lexicographer file table', () => {
    expect(lemmaText('claw_hammer')).toBe('claw hammer');
    expect(LEX_FILES).toHaveLength(45);
    expect([LEX_FILES[3], LEX_FILES[6], LEX_FILES[18], LEX_FILES[28], LEX_FILES[44]]).toEqual(['noun.Tops', 'noun.artifact', 'noun.person', 'noun.time', 'adj.ppl']);
  });
});

const SYSTEM_NOUNS = '/usr/share/wordnet/data.noun';
describe.skipIf(!existsSync(SYSTEM_NOUNS))('the installed WordNet (Debian wordnet-base)', () => {
  it('parses all 82,115 noun synsets with valid offsets', () => {
    const all = readWordNetData(SYSTEM_NOUNS);
    expect(all).toHaveLength(82115);
    expect(all.every((s) => s.definition !== '' && s.words.length > 0)).toBe(true);
  });
});
if (!existsSync(SYSTEM_NOUNS)) console.log(`wordnet.test.ts: skipping the installed-WordNet case: ${SYSTEM_NOUNS} is absent (apt-get install wordnet-base)`);
