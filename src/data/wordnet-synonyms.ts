/**
 * WordNet 3.0 synonyms for word-substitution attacks (PWWS), read from the
 * `index.*`, `data.*` and `*.exc` files of Debian's `wordnet-base` without a
 * WordNet library. Formats: wndb(5WN) and morphy(7WN).
 *
 *   index line:     lemma pos synset_cnt p_cnt [ptr_symbol…] sense_cnt tagsense_cnt synset_offset…
 *   exception line: inflected_form base_form [base_form…]
 *
 * There is no part-of-speech tagger offline, so a word is looked up under
 * every part of speech WordNet lists it (or a base form of it) under, and a
 * candidate is always a lemma of a synset of that part of speech: "same part
 * of speech where WordNet gives one". synonymsByPos() tells the caller which.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ClozeError, describe } from '../errors.js';
import { at } from './lines.js';
import { parseDataLine, type Synset } from './wordnet.js';

export type WordNetPos = 'n' | 'v' | 'a' | 'r';

/** The order synonyms come in: nouns, verbs, adjectives (satellites included), adverbs. */
export const WORDNET_POS: readonly WordNetPos[] = ['n', 'v', 'a', 'r'];

const FILE_NAME: Record<WordNetPos, string> = { n: 'noun', v: 'verb', a: 'adj', r: 'adv' };

export interface IndexEntry {
  lemma: string;
  pos: WordNetPos;
  /** Byte offsets of the lemma's synsets in `data.<pos>`, in the index's (sense frequency) order. */
  offsets: number[];
}

export interface ExceptionEntry {
  inflected: string;
  bases: string[];
}

export interface PosSynonyms {
  pos: WordNetPos;
  synonyms: string[];
}

/** morphy(7WN)'s rules of detachment, in its order; adverbs have only the exception list. */
export const DETACHMENT_RULES: Readonly<Record<WordNetPos, readonly (readonly [string, string])[]>> = {
  n: [['s', ''], ['ses', 's'], ['xes', 'x'], ['zes', 'z'], ['ches', 'ch'], ['shes', 'sh'], ['men', 'man'], ['ies', 'y']],
  v: [['s', ''], ['ies', 'y'], ['es', 'e'], ['es', ''], ['ed', 'e'], ['ed', ''], ['ing', 'e'], ['ing', '']],
  a: [['er', ''], ['est', ''], ['er', 'e'], ['est', 'e']],
  r: [],
};

/**
 * A lemma we offer as a substitute: letters and digits only. Multi-word
 * lemmas (`claw_hammer`) and hyphenated or dotted ones (`faint-hearted`,
 * `o.k.`) are dropped: BERT's basic tokenizer splits them into several
 * tokens, so they cannot replace one word in place.
 */
const SINGLE_WORD = /^[\p{L}\p{N}]+$/u;

function bad(file: string, line: number, fieldName: string, what: string, got: unknown): ClozeError {
  return new ClozeError('E_VALUE', `Expected ${what} for ${at(file, line)} field "${fieldName}" but received ${describe(got)}`);
}

/** Parses one line of an index file; `file` and `line` only name the place in errors. */
export function parseIndexLine(text: string, file: string, line: number): IndexEntry {
  const t = text.trimEnd().split(' '); // real lines end with two spaces
  let k = 0;
  const next = (fieldName: string): string => {
    const v = t[k++];
    if (v === undefined || v === '') throw bad(file, line, fieldName, 'a value', 'the end of the line');
    return v;
  };
  const count = (fieldName: string): number => {
    const v = next(fieldName);
    if (!/^\d+$/.test(v)) throw bad(file, line, fieldName, 'a decimal count', v);
    return Number(v);
  };
  const lemma = next('lemma');
  const pos = next('pos');
  if (!/^[nvar]$/.test(pos)) throw bad(file, line, 'pos', 'one of n, v, a, r', pos);
  const synsetCnt = count('synset_cnt');
  if (synsetCnt === 0) throw bad(file, line, 'synset_cnt', 'a count above 0', '0');
  for (let i = 0, n = count('p_cnt'); i < n; i++) next('ptr_symbol');
  const senseCnt = count('sense_cnt');
  // wndb(5WN): sense_cnt repeats synset_cnt; a mismatch means the pointer list is off.
  if (senseCnt !== synsetCnt) throw bad(file, line, 'sense_cnt', `synset_cnt (${synsetCnt})`, String(senseCnt));
  count('tagsense_cnt');
  const offsets = t.slice(k).map((o) => {
    if (!/^\d{8}$/.test(o)) throw bad(file, line, 'synset_offset', 'an 8-digit offset', o);
    return Number(o);
  });
  if (offsets.length !== synsetCnt) throw bad(file, line, 'synset_offset', `${synsetCnt} offsets (synset_cnt)`, offsets.length);
  return { lemma, pos: pos as WordNetPos, offsets };
}

/** Parses one line of an exception list (`noun.exc` and its siblings). */
export function parseExceptionLine(text: string, file: string, line: number): ExceptionEntry {
  const t = text.trim().split(/ +/);
  if (t[0] === '') throw bad(file, line, 'inflected_form', 'a word', 'an empty line');
  if (t.length < 2) throw bad(file, line, 'base_form', 'at least one base form', 'the end of the line');
  return { inflected: t[0]!, bases: t.slice(1) };
}

/**
 * morphy(7WN): the base forms of a word for one part of speech, as NLTK's
 * morphy finds them. An exception-list entry wins outright (the rules are not
 * tried on it); otherwise every rule that applies is tried, not only the
 * first. The word itself counts. Only forms in that part of speech's index
 * are kept, in order, without repeats. Like WordNet and NLTK this over-reaches
 * on short words (`was` -> `wa`, Washington); a caller that skips stop words
 * never sees it.
 */
export function morphy(word: string, pos: WordNetPos, exceptions: ReadonlyMap<string, readonly string[]>, inIndex: (lemma: string) => boolean): string[] {
  const exc = exceptions.get(word);
  const candidates = exc
    ? [word, ...exc]
    : [word, ...DETACHMENT_RULES[pos].filter(([suffix]) => word.endsWith(suffix)).map(([suffix, base]) => word.slice(0, -suffix.length) + base)];
  return [...new Set(candidates.filter((c) => c !== '' && inIndex(c)))];
}

const decoder = new TextDecoder('utf-8', { fatal: true });

/** A line's bytes as text; strict, so a damaged file is named rather than read as U+FFFD. */
function decodeLine(bytes: Buffer, file: string, line: number): string {
  try {
    return decoder.decode(bytes);
  } catch {
    throw new ClozeError('E_VALUE', `Expected valid UTF-8 for ${at(file, line)} but received invalid bytes`);
  }
}

/** Calls `fn` with each line of a buffer as text and its 1-based number. */
function eachLine(buf: Buffer, file: string, fn: (text: string, line: number) => void): void {
  for (let start = 0, line = 1; start < buf.length; line++) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    fn(decodeLine(buf.subarray(start, end), file, line), line);
    start = end + 1;
  }
}

const INSTALL = "a readable WordNet 3.0 file (install Debian's wordnet-base: apt-get install wordnet-base)";

function readWordNetFile(path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClozeError('E_IO', `Expected ${INSTALL} for wordnet but received '${path}' (${err.code ?? err.message})`);
  }
}

/** One part of speech's index: lemma → (start << 8 | count) into a shared offset array, to keep ~150k lemmas small. */
interface PosIndex {
  lemmas: Map<string, number>;
  offsets: Int32Array;
}

/** A data file kept as bytes; only the synsets asked for are parsed. */
interface PosData {
  buf: Buffer;
  /** Byte offset of every line, ascending: a synset offset must be one, and its position gives the line number. */
  lineStarts: Int32Array;
}

/** Looked-up words kept; PWWS asks for the same words sentence after sentence. */
const CACHE_SIZE = 4096;

export class WordNetSynonyms {
  private readonly index = new Map<WordNetPos, PosIndex>();
  private readonly data = new Map<WordNetPos, PosData>();
  private readonly exceptions = new Map<WordNetPos, Map<string, string[]>>();
  private readonly cache = new Map<string, PosSynonyms[]>();

  private constructor(readonly dir: string) {}

  /** Checks that every file is there (so a missing install fails here, not mid-attack); reads them on first use. */
  static open(dir = '/usr/share/wordnet'): WordNetSynonyms {
    for (const p of WORDNET_POS) {
      for (const name of [`index.${FILE_NAME[p]}`, `data.${FILE_NAME[p]}`, `${FILE_NAME[p]}.exc`]) {
        const path = join(dir, name);
        let ok = false;
        let why = 'not a file';
        try {
          ok = statSync(path).isFile();
        } catch (e) {
          why = (e as NodeJS.ErrnoException).code ?? String(e);
        }
        if (!ok) throw new ClozeError('E_IO', `Expected ${INSTALL} for wordnet but received '${path}' (${why})`);
      }
    }
    return new WordNetSynonyms(dir);
  }

  /** morphy(7WN) against this WordNet: the word's base forms (itself included) listed under `pos`. */
  baseForms(word: string, pos: WordNetPos): string[] {
    const lemmas = this.posIndex(pos).lemmas;
    return morphy(word.toLowerCase(), pos, this.posExceptions(pos), (w) => lemmas.has(w));
  }

  /**
   * Single-word synonyms of a word, lower-cased, per part of speech (n, v,
   * a, r; only those with any). Within one: base form order, then synset
   * order as in the index, then lemma order; no repeats. The word and all its
   * base forms (of any part of speech) are left out: `better` does not offer
   * `good`, which is the same word, not a substitute. A lemma may appear under
   * two parts of speech.
   */
  synonymsByPos(word: string): PosSynonyms[] {
    const w = word.trim().toLowerCase();
    let hit = this.cache.get(w);
    if (!hit) {
      hit = this.lookUp(w);
      if (this.cache.size >= CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(w, hit);
    }
    return hit.map((x) => ({ pos: x.pos, synonyms: [...x.synonyms] }));
  }

  /** synonymsByPos() flattened in its order, without repeats. */
  synonyms(word: string): string[] {
    return [...new Set(this.synonymsByPos(word).flatMap((x) => x.synonyms))];
  }

  private lookUp(w: string): PosSynonyms[] {
    if (w === '') return [];
    const bases = WORDNET_POS.map((p) => this.baseForms(w, p));
    const exclude = new Set([w, ...bases.flat()]);
    const out: PosSynonyms[] = [];
    WORDNET_POS.forEach((pos, i) => {
      const seenSynsets = new Set<number>();
      const synonyms = new Set<string>();
      for (const base of bases[i]!) {
        for (const offset of this.offsetsOf(pos, base)) {
          if (seenSynsets.has(offset)) continue;
          seenSynsets.add(offset);
          for (const lemma of this.synset(pos, offset, base).words) {
            const l = lemma.toLowerCase();
            if (SINGLE_WORD.test(l) && !exclude.has(l)) synonyms.add(l);
          }
        }
      }
      if (synonyms.size > 0) out.push({ pos, synonyms: [...synonyms] });
    });
    return out;
  }

  private offsetsOf(pos: WordNetPos, lemma: string): Int32Array {
    const idx = this.posIndex(pos);
    const packed = idx.lemmas.get(lemma);
    if (packed === undefined) return new Int32Array(0);
    const start = Math.floor(packed / 256);
    return idx.offsets.subarray(start, start + (packed % 256));
  }

  private posIndex(pos: WordNetPos): PosIndex {
    let idx = this.index.get(pos);
    if (idx) return idx;
    const name = `index.${FILE_NAME[pos]}`;
    const file = join(this.dir, name);
    const lemmas = new Map<string, number>();
    const all: number[] = [];
    eachLine(readWordNetFile(file), file, (text, line) => {
      if (text === '' || text.startsWith('  ')) return; // licence header
      const e = parseIndexLine(text, file, line);
      if (e.pos !== pos) throw bad(file, line, 'pos', `'${pos}' in ${name}`, e.pos);
      if (e.offsets.length > 255) throw bad(file, line, 'synset_cnt', 'at most 255 synsets', e.offsets.length);
      lemmas.set(e.lemma, all.length * 256 + e.offsets.length);
      all.push(...e.offsets);
    });
    idx = { lemmas, offsets: Int32Array.from(all) };
    this.index.set(pos, idx);
    return idx;
  }

  private posExceptions(pos: WordNetPos): Map<string, string[]> {
    let exc = this.exceptions.get(pos);
    if (exc) return exc;
    const file = join(this.dir, `${FILE_NAME[pos]}.exc`);
    exc = new Map();
    const m = exc;
    eachLine(readWordNetFile(file), file, (text, line) => {
      if (text.trim() === '') return;
      const e = parseExceptionLine(text, file, line);
      m.set(e.inflected, [...(m.get(e.inflected) ?? []), ...e.bases]);
    });
    this.exceptions.set(pos, exc);
    return exc;
  }

  /** The synset at a byte offset of `data.<pos>`; `lemma` names the index entry that pointed there, for errors. */
  private synset(pos: WordNetPos, offset: number, lemma: string): Synset {
    let d = this.data.get(pos);
    if (!d) {
      const buf = readWordNetFile(join(this.dir, `data.${FILE_NAME[pos]}`));
      const starts: number[] = [];
      for (let s = 0; s < buf.length; ) {
        starts.push(s);
        const nl = buf.indexOf(10, s);
        s = nl < 0 ? buf.length : nl + 1;
      }
      d = { buf, lineStarts: Int32Array.from(starts) };
      this.data.set(pos, d);
    }
    const file = join(this.dir, `data.${FILE_NAME[pos]}`);
    let lo = 0;
    let hi = d.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (d.lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    const off8 = String(offset).padStart(8, '0');
    if (d.lineStarts[lo] !== offset) {
      throw new ClozeError('E_VALUE', `Expected a line starting at byte offset ${off8} for ${file} (listed for '${lemma}' in index.${FILE_NAME[pos]}) but received none there`);
    }
    let end = d.buf.indexOf(10, offset);
    if (end < 0) end = d.buf.length;
    const s = parseDataLine(decodeLine(d.buf.subarray(offset, end), file, lo + 1), file, lo + 1);
    if (s.offset !== offset) throw bad(file, lo + 1, 'synset_offset', `the line's byte offset ${off8}`, String(s.offset).padStart(8, '0'));
    if (s.pos !== pos && !(pos === 'a' && s.pos === 's')) throw bad(file, lo + 1, 'ss_type', `'${pos}'`, s.pos);
    return s;
  }
}
