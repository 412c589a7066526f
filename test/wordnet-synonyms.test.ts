/**
 * WordNet synonyms for the PWWS attack: index and exception lines, morphy,
 * and lookups on the committed fixture (real WordNet 3.0 lines, a subset of
 * senses, pointers removed, offsets renumbered), then on the installed
 * WordNet when there is one.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readWordNetData } from '../src/data/wordnet.js';
import { morphy, parseExceptionLine, parseIndexLine, WordNetSynonyms } from '../src/data/wordnet-synonyms.js';

const MINI = join(import.meta.dirname, 'fixtures', 'wordnet-mini');
const REAL = '/usr/share/wordnet';

describe('WordNetSynonyms on the fixture', () => {
  const wn = WordNetSynonyms.open(MINI);

  it('is made of valid data files (every offset its line\'s byte position)', () => {
    expect(['noun', 'verb', 'adj', 'adv'].map((p) => readWordNetData(join(MINI, `data.${p}`)).length)).toEqual([15, 7, 8, 4]);
  });

  it('gives a word\'s synonyms per part of speech, in index then lemma order, single words only', () => {
    // power_hammer (a hammer synset) is multi-word; the word itself is left out.
    expect(wn.synonymsByPos('hammer')).toEqual([
      { pos: 'n', synonyms: ['cock', 'malleus', 'mallet', 'pound', 'hammering', 'pounding'] },
      { pos: 'v', synonyms: ['forge'] },
    ]);
    expect(wn.synonyms('run')).toEqual(['tally', 'test', 'trial', 'scat', 'scarper', 'lam', 'bunk', 'escape', 'go', 'pass', 'lead', 'extend', 'operate']);
  });

  it('counts adjective satellites as adjectives, strips (p) markers and de-duplicates across parts of speech', () => {
    expect(wn.synonymsByPos('good')).toEqual([
      { pos: 'n', synonyms: ['goodness'] },
      { pos: 'a', synonyms: ['full', 'estimable', 'honorable', 'respectable', 'just', 'upright', 'well'] },
      { pos: 'r', synonyms: ['well', 'thoroughly', 'soundly'] },
    ]);
    expect(wn.synonyms('good')).toEqual(['goodness', 'full', 'estimable', 'honorable', 'respectable', 'just', 'upright', 'well', 'thoroughly', 'soundly']);
  });

  it('drops hyphenated lemmas (several BERT tokens)', () => {
    expect(wn.synonyms('timid')).toEqual(['faint', 'fainthearted']);
  });

  it('finds base forms through the exception lists, only under their part of speech', () => {
    expect(wn.synonymsByPos('ran')).toEqual([{ pos: 'v', synonyms: ['scat', 'scarper', 'lam', 'bunk', 'escape', 'go', 'pass', 'lead', 'extend', 'operate'] }]);
    // geese is goose the noun only (the verb goose is not offered).
    expect(wn.synonymsByPos('geese')).toEqual([{ pos: 'n', synonyms: ['fathead', 'goof', 'goofball', 'bozo', 'jackass', 'cuckoo', 'twat', 'zany'] }]);
  });

  it('leaves out every base form of the word, of any part of speech', () => {
    // better: adj.exc gives good and well, adv.exc well; the adverb synset {well, good} offers neither.
    expect(wn.synonymsByPos('better')).toEqual([
      { pos: 'a', synonyms: ['full', 'estimable', 'honorable', 'respectable', 'just', 'upright'] },
      { pos: 'r', synonyms: ['easily'] },
    ]);
  });

  it('finds base forms through the detachment rules, and lower-cases the word', () => {
    expect(wn.synonymsByPos('hammers')).toEqual(wn.synonymsByPos('hammer'));
    expect(wn.synonyms(' Hammer ')).toEqual(wn.synonyms('hammer'));
    expect(wn.baseForms('hammers', 'n')).toEqual(['hammer']);
    expect(wn.baseForms('ran', 'v')).toEqual(['run']);
    expect(wn.baseForms('geese', 'v')).toEqual([]);
  });

  it('returns [] for an unknown or empty word, and copies that callers may change', () => {
    expect(wn.synonyms('xyzzy')).toEqual([]);
    expect(wn.synonyms('')).toEqual([]);
    wn.synonyms('timid').push('brave');
    wn.synonymsByPos('timid')[0]!.synonyms.push('brave');
    expect(wn.synonyms('timid')).toEqual(['faint', 'fainthearted']);
  });
});

describe('morphy', () => {
  const all = (): boolean => true;
  it('tries every rule that applies, keeping forms in the index', () => {
    expect(morphy('axes', 'n', new Map(), (w) => ['ax', 'axe'].includes(w))).toEqual(['axe', 'ax']);
    expect(morphy('boxes', 'v', new Map(), all)).toEqual(['boxes', 'boxe', 'box']);
    // No consonant-doubling rule: WordNet lists bigger -> big in adj.exc instead.
    expect(morphy('bigger', 'a', new Map(), (w) => w === 'bigg' || w === 'big')).toEqual(['bigg']);
  });
  it('lets an exception win over the rules, and gives adverbs the exception list only', () => {
    expect(morphy('axes', 'n', new Map([['axes', ['axis']]]), all)).toEqual(['axes', 'axis']);
    expect(morphy('quickly', 'r', new Map(), all)).toEqual(['quickly']);
    expect(morphy('better', 'r', new Map([['better', ['well']]]), (w) => w === 'well')).toEqual(['well']);
  });
});

describe('parseIndexLine and parseExceptionLine', () => {
  const good = 'hammer v 2 4 @ ~ $ + 2 1 01416557 01675263  ';
  it('parses an index line with its pointer symbols and trailing spaces', () => {
    expect(parseIndexLine(good, 'index.verb', 9)).toEqual({ lemma: 'hammer', pos: 'v', offsets: [1416557, 1675263] });
  });
  const cases: [string, RegExp][] = [
    [good.replace(' v ', ' s '), /one of n, v, a, r for index\.verb:9 field "pos" but received 's'/],
    [good.replace(' 2 4 ', ' 3 4 '), /synset_cnt \(3\) for index\.verb:9 field "sense_cnt" but received '2'/],
    [good.replace(' 2 1 ', ' 3 1 ').replace(' 2 4 ', ' 3 4 '), /3 offsets \(synset_cnt\) for index\.verb:9 field "synset_offset" but received 2/],
    [good.replace('01675263', '1675263'), /8-digit offset for index\.verb:9 field "synset_offset" but received '1675263'/],
    [good.replace(' 4 @', ' x @'), /decimal count for index\.verb:9 field "p_cnt" but received 'x'/],
    ['hammer v 2 4 @ ~', /a value for index\.verb:9 field "ptr_symbol" but received 'the end of the line'/],
  ];
  for (const [line, msg] of cases) {
    it(`rejects ${JSON.stringify(line)}, naming the line and the field`, () => {
      expect(() => parseIndexLine(line, 'index.verb', 9)).toThrow(msg);
    });
  }
  it('parses an exception line and rejects one without a base form', () => {
    expect(parseExceptionLine('better good well', 'adj.exc', 46)).toEqual({ inflected: 'better', bases: ['good', 'well'] });
    expect(() => parseExceptionLine('better', 'adj.exc', 46)).toThrow(/at least one base form for adj\.exc:46 field "base_form"/);
  });
});

describe('damaged and missing WordNet files', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'cloze-wordnet-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const copy = (name: string): string => {
    const dir = join(tmp, name);
    cpSync(MINI, dir, { recursive: true });
    return dir;
  };

  it('names the file, line and field of a malformed index line when the index is first read', () => {
    const dir = copy('bad-index');
    const file = join(dir, 'index.noun');
    const lines = readFileSync(file, 'utf8').split('\n');
    const k = lines.findIndex((l) => l.startsWith('goose n 3 '));
    lines[k] = lines[k]!.replace('goose n 3', 'goose n 4');
    writeFileSync(file, lines.join('\n'));
    const wn = WordNetSynonyms.open(dir);
    expect(() => wn.synonyms('goose')).toThrow(new RegExp(`index\\.noun:${k + 1} field "sense_cnt" but received '3'`));
  });

  it('names an index offset that is not the start of a data line', () => {
    const dir = copy('bad-offset');
    const file = join(dir, 'index.adj');
    const text = readFileSync(file, 'utf8');
    const off = Number(/^timid .* (\d{8}) *$/m.exec(text)![1]) + 1;
    writeFileSync(file, text.replace(/^(timid .* )\d{8}/m, `$1${String(off).padStart(8, '0')}`));
    expect(() => WordNetSynonyms.open(dir).synonyms('timid')).toThrow(`byte offset ${String(off).padStart(8, '0')} for ${join(dir, 'data.adj')} (listed for 'timid' in index.adj)`);
  });

  it('fails to open a missing directory or file with E_IO, saying to install wordnet-base', () => {
    expect(() => WordNetSynonyms.open(join(tmp, 'nowhere'))).toThrow(expect.objectContaining({ code: 'E_IO', message: expect.stringMatching(/wordnet-base.*nowhere\/index\.noun' \(ENOENT\)/) }));
    const dir = copy('no-verb-exc');
    rmSync(join(dir, 'verb.exc'));
    expect(() => WordNetSynonyms.open(dir)).toThrow(/wordnet-base.*verb\.exc' \(ENOENT\)/);
  });
});

describe('WordNetSynonyms on the installed WordNet', () => {
  it.skipIf(!existsSync(join(REAL, 'index.noun')))('gives known single-word synonyms of good, ran and movie', () => {
    const wn = WordNetSynonyms.open(REAL);
    const good = wn.synonyms('good');
    expect(good).toEqual(expect.arrayContaining(['goodness', 'full', 'estimable', 'respectable', 'upright', 'expert', 'skillful', 'well', 'thoroughly']));
    expect(good).not.toContain('good');
    expect(good.filter((w) => !/^[a-z0-9]+$/.test(w))).toEqual([]);
    expect(wn.synonyms('ran')).toEqual(expect.arrayContaining(['scat', 'escape', 'operate']));
    expect(wn.synonyms('movie')).toEqual(['film', 'picture', 'pic', 'flick']);
  });
});
