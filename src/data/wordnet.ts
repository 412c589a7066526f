/**
 * WordNet 3.0 data files (`data.noun` and its siblings, wndb(5WN)): one
 * synset a line, parsed here without a WordNet library:
 *
 *   offset lex_filenum ss_type w_cnt (word lex_id)… p_cnt (ptr offset pos src/tgt)… [frames] | gloss
 *
 * w_cnt and lex_id are hexadecimal, p_cnt decimal. The licence header lines
 * start with two spaces. A synset's offset is the byte offset of its line, so
 * a file whose offsets do not match was edited or truncated.
 */
import { readFileSync } from 'node:fs';
import { ClozeError, describe } from '../errors.js';
import { at } from './lines.js';

/** lexnames(5WN): lexicographer file names by number. */
export const LEX_FILES: readonly string[] = [
  'adj.all', 'adj.pert', 'adv.all', 'noun.Tops', 'noun.act', 'noun.animal', 'noun.artifact', 'noun.attribute',
  'noun.body', 'noun.cognition', 'noun.communication', 'noun.event', 'noun.feeling', 'noun.food', 'noun.group',
  'noun.location', 'noun.motive', 'noun.object', 'noun.person', 'noun.phenomenon', 'noun.plant', 'noun.possession',
  'noun.process', 'noun.quantity', 'noun.relation', 'noun.shape', 'noun.state', 'noun.substance', 'noun.time',
  'verb.body', 'verb.change', 'verb.cognition', 'verb.communication', 'verb.competition', 'verb.consumption',
  'verb.contact', 'verb.creation', 'verb.emotion', 'verb.motion', 'verb.perception', 'verb.possession', 'verb.social',
  'verb.stative', 'verb.weather', 'adj.ppl',
];

export type SynsetType = 'n' | 'v' | 'a' | 's' | 'r';

export interface Synset {
  /** Byte offset of the line in its data file: the synset's id within its part of speech. */
  offset: number;
  /** Lexicographer file, e.g. "noun.artifact". */
  lexFile: string;
  pos: SynsetType;
  /** Word forms as written in the file ("hammer", "claw_hammer", adjective markers removed). */
  words: string[];
  /** The whole gloss: definition(s), then any quoted examples. */
  gloss: string;
  /** The gloss before its first quoted example, without the trailing "; ". */
  definition: string;
  /** The quoted example sentences, without their quotes. */
  examples: string[];
}

const LEX_PREFIX: Record<SynsetType, string> = { n: 'noun.', v: 'verb.', a: 'adj.', s: 'adj.', r: 'adv.' };

/** A word form as text: underscores become spaces. */
export function lemmaText(word: string): string {
  return word.replace(/_/g, ' ');
}

/** Splits a gloss at its first `; "` (or a leading quote) into the definition and the quoted examples. */
export function splitGloss(gloss: string): { definition: string; examples: string[] } {
  const m = /(^|;\s*)"/.exec(gloss);
  if (!m) return { definition: gloss.trim(), examples: [] };
  const definition = gloss.slice(0, m.index).trim();
  const examples = [...gloss.slice(m.index).matchAll(/"([^"]*)"/g)].map((x) => x[1]!.trim()).filter((x) => x !== '');
  return { definition, examples };
}

function bad(file: string, line: number, fieldName: string, what: string, got: unknown): ClozeError {
  return new ClozeError('E_VALUE', `Expected ${what} for ${at(file, line)} field "${fieldName}" but received ${describe(got)}`);
}

/** Parses one synset line of a data file; `file` and `line` only name the place in errors. */
export function parseDataLine(text: string, file: string, line: number): Synset {
  let bar = text.indexOf(' | ');
  if (bar < 0 && text.trimEnd().endsWith(' |')) bar = text.trimEnd().length - 2; // an empty gloss
  if (bar < 0) throw bad(file, line, 'gloss', 'a " | " before the gloss', text.length > 40 ? text.slice(0, 40) + '…' : text);
  const head = text.slice(0, bar).split(' ');
  let k = 0;
  const next = (fieldName: string): string => {
    const t = head[k++];
    if (t === undefined || t === '') throw bad(file, line, fieldName, 'a value', 'the end of the line');
    return t;
  };
  const offTok = next('synset_offset');
  if (!/^\d{8}$/.test(offTok)) throw bad(file, line, 'synset_offset', 'an 8-digit offset', offTok);
  const lexTok = next('lex_filenum');
  const lexNum = /^\d{2}$/.test(lexTok) ? Number(lexTok) : -1;
  if (lexNum < 0 || lexNum >= LEX_FILES.length) throw bad(file, line, 'lex_filenum', `a 2-digit number below ${LEX_FILES.length}`, lexTok);
  const pos = next('ss_type');
  if (!/^[nvasr]$/.test(pos)) throw bad(file, line, 'ss_type', 'one of n, v, a, s, r', pos);
  const lexFile = LEX_FILES[lexNum]!;
  if (!lexFile.startsWith(LEX_PREFIX[pos as SynsetType])) {
    throw bad(file, line, 'lex_filenum', `a ${LEX_PREFIX[pos as SynsetType]}* file for ss_type ${pos}`, `${lexTok} (${lexFile})`);
  }
  const wTok = next('w_cnt');
  if (!/^[0-9a-f]{2}$/.test(wTok) || wTok === '00') throw bad(file, line, 'w_cnt', 'a 2-digit hexadecimal count above 0', wTok);
  const words: string[] = [];
  for (let i = 0, n = parseInt(wTok, 16); i < n; i++) {
    const w = next('word');
    const id = next('lex_id');
    if (!/^[0-9a-f]$/.test(id)) throw bad(file, line, 'lex_id', 'a hexadecimal digit', id);
    words.push(w.replace(/\((a|p|ip)\)$/, ''));
  }
  const pTok = next('p_cnt');
  if (!/^\d{3}$/.test(pTok)) throw bad(file, line, 'p_cnt', 'a 3-digit count', pTok);
  for (let i = 0, n = Number(pTok); i < n; i++) {
    next('pointer_symbol');
    const o = next('pointer offset');
    if (!/^\d{8}$/.test(o)) throw bad(file, line, 'pointer offset', 'an 8-digit offset', o);
    const p = next('pointer pos');
    if (!/^[nvasr]$/.test(p)) throw bad(file, line, 'pointer pos', 'one of n, v, a, s, r', p);
    const st = next('source/target');
    if (!/^[0-9a-f]{4}$/.test(st)) throw bad(file, line, 'source/target', '4 hexadecimal digits', st);
  }
  if (pos === 'v') {
    const fTok = next('f_cnt');
    if (!/^\d{2}$/.test(fTok)) throw bad(file, line, 'f_cnt', 'a 2-digit count', fTok);
    for (let i = 0, n = Number(fTok); i < n; i++) {
      const plus = next('frame');
      if (plus !== '+') throw bad(file, line, 'frame', '"+"', plus);
      next('f_num');
      next('w_num');
    }
  }
  if (k < head.length) throw bad(file, line, 'gloss', 'a " | " after the pointers', head.slice(k).join(' '));
  const gloss = text.slice(bar + 3).trim();
  return { offset: Number(offTok), lexFile, pos: pos as SynsetType, words, gloss, ...splitGloss(gloss) };
}

/** Every synset of a data file, in file order; each offset is checked against its line's byte position. */
export function readWordNetData(file: string): Synset[] {
  let buf: Buffer;
  try {
    buf = readFileSync(file);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ClozeError('E_IO', `Expected a readable WordNet data file for wordnet but received '${file}' (${err.code ?? err.message})`);
  }
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const out: Synset[] = [];
  let start = 0;
  for (let line = 1; start < buf.length; line++) {
    let end = buf.indexOf(10, start);
    if (end < 0) end = buf.length;
    const bytes = buf.subarray(start, end);
    // Licence header lines start with two spaces; nothing else is skipped.
    if (!(bytes[0] === 32 && bytes[1] === 32) && bytes.length > 0) {
      let text: string;
      try {
        text = decoder.decode(bytes);
      } catch {
        throw new ClozeError('E_VALUE', `Expected valid UTF-8 for ${at(file, line)} but received invalid bytes`);
      }
      const s = parseDataLine(text, file, line);
      if (s.offset !== start) throw bad(file, line, 'synset_offset', `the line's byte offset ${String(start).padStart(8, '0')}`, String(s.offset).padStart(8, '0'));
      out.push(s);
    }
    start = end + 1;
  }
  if (out.length === 0) throw new ClozeError('E_VALUE', `Expected at least one synset for ${file} but received none`);
  return out;
}
