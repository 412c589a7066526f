/**
 * WordPiece tokenizers through Hugging Face's `tokenizers` binding: trained
 * from a corpus, loaded from tokenizer.json or from a BERT vocab.txt.
 *
 * Every tokenizer made here has the five special tokens at fixed ids
 * [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4; a loaded tokenizer.json may place
 * them anywhere but must contain all five.
 *
 * Training uses the binding's `Tokenizer.train(files)`, which runs the
 * WordPiece model's default trainer (at most 30000 tokens; the binding does
 * not expose trainer options). Its vocabulary is ordered: alphabet first, then
 * merges in the order they were learned, so keeping the first `vocabSize - 5`
 * entries is the vocabulary a trainer stopped at that size would have produced.
 */
import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, extname } from 'node:path';
import {
  Tokenizer, WordPiece, bertNormalizer, bertPreTokenizer, bertProcessing, wordPieceDecoder,
} from 'tokenizers';
import { ClozeError, describe } from '../errors.js';
import { checkInt } from '../validate.js';
import { readDocuments, type CorpusOptions } from './documents.js';
import { at, readLines } from './lines.js';

export const SPECIAL_TOKENS = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'] as const;
/** Largest vocabulary the binding's default WordPiece trainer produces. */
export const MAX_TRAINED_VOCAB = 30000;

/** A `tokenizers` Tokenizer plus the ids cloze needs. */
export class TextTokenizer {
  readonly hf: Tokenizer;
  readonly vocabSize: number;
  readonly padId: number;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;
  readonly maskId: number;
  private fp: string | null = null;

  constructor(hf: Tokenizer, source = 'tokenizer') {
    this.hf = hf;
    this.vocabSize = hf.getVocabSize(true);
    const id = (tok: string): number => {
      const v = hf.tokenToId(tok);
      if (v === null || v === undefined) {
        throw new ClozeError('E_VALUE', `Expected a vocabulary with ${SPECIAL_TOKENS.join(' ')} for ${source} but received one without ${tok}`);
      }
      return v;
    };
    const ids = SPECIAL_TOKENS.map(id) as [number, number, number, number, number];
    // Checked at load, not found at encode time: every special id inside the vocabulary, and no two the same.
    ids.forEach((v, i) => {
      if (!Number.isInteger(v) || v < 0 || v >= this.vocabSize) {
        throw new ClozeError('E_VALUE', `Expected an id in [0, ${this.vocabSize - 1}] (the vocabulary) for ${SPECIAL_TOKENS[i]} in ${source} but received ${v}`);
      }
      const first = ids.indexOf(v);
      if (first !== i) throw new ClozeError('E_VALUE', `Expected distinct ids for the special tokens in ${source} but received ${v} for both ${SPECIAL_TOKENS[first]} and ${SPECIAL_TOKENS[i]}`);
    });
    [this.padId, this.unkId, this.clsId, this.sepId, this.maskId] = ids;
  }

  /** Token ids of each text, without special tokens. */
  async encodeBatch(texts: readonly string[]): Promise<Int32Array[]> {
    if (texts.length === 0) return [];
    let encs: Awaited<ReturnType<Tokenizer['encodeBatch']>>;
    try {
      encs = await this.hf.encodeBatch([...texts], { addSpecialTokens: false });
    } catch (e) {
      throw new ClozeError('E_VALUE', `Expected the tokenizer to encode the text but it failed (${(e as Error).message})`);
    }
    return encs.map((e) => Int32Array.from(e.getIds()));
  }

  async encode(text: string): Promise<Int32Array> {
    return (await this.encodeBatch([text]))[0]!;
  }

  async decode(ids: ArrayLike<number>, skipSpecialTokens = true): Promise<string> {
    return this.hf.decode(Array.from(ids), skipSpecialTokens);
  }

  /** Writes tokenizer.json. */
  save(path: string): void {
    this.hf.save(path, true);
  }

  /** sha256 of the tokenizer's JSON form: changes whenever encoding could change. */
  fingerprint(): string {
    if (this.fp === null) {
      const dir = mkdtempSync(join(tmpdir(), 'cloze-tok-'));
      try {
        const file = join(dir, 'tokenizer.json');
        this.hf.save(file, false);
        this.fp = createHash('sha256').update(readFileSync(file)).digest('hex');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    return this.fp;
  }
}

export interface TrainWordPieceOptions extends CorpusOptions {
  /** Vocabulary size including the 5 special tokens; default 30000, at most 30000. */
  vocabSize?: number;
  /** Lowercase (and strip accents) before tokenizing; default true. */
  lowercase?: boolean;
}

/** Trains a WordPiece vocabulary on the documents under `paths`. */
export async function trainWordPiece(paths: string | readonly string[], opts: TrainWordPieceOptions = {}): Promise<TextTokenizer> {
  const { vocabSize = MAX_TRAINED_VOCAB, lowercase = true } = opts;
  checkInt(vocabSize, 'vocabSize', SPECIAL_TOKENS.length + 1, MAX_TRAINED_VOCAB);
  checkBool(lowercase, 'lowercase');
  // The binding trains on plain-text files, one sequence per line: write the
  // documents as our readers see them (validated, JSONL fields extracted).
  const dir = mkdtempSync(join(tmpdir(), 'cloze-train-'));
  try {
    const file = join(dir, 'corpus.txt');
    const out = createWriteStream(file);
    for await (const doc of readDocuments(paths, opts)) {
      if (!out.write(`${doc.text.replace(/[\r\n\u2028\u2029]+/g, ' ')}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');
    const trainer = bertTokenizer(WordPiece.init({}, { unkToken: '[UNK]' }), lowercase);
    trainer.train([file]);
    const learned = Object.entries(trainer.getVocab(true)).sort((a, b) => a[1] - b[1]).map(([t]) => t);
    const specials = new Set<string>(SPECIAL_TOKENS);
    const tokens = [...SPECIAL_TOKENS, ...learned.filter((t) => !specials.has(t))].slice(0, vocabSize);
    return fromTokens(tokens, lowercase);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface LoadTokenizerOptions {
  /** For vocab.txt only (tokenizer.json carries its own normalizer); default true. */
  lowercase?: boolean;
}

/**
 * Loads tokenizer.json (any file ending in .json) or a BERT vocab.txt (one
 * token per line, the line number minus one being its id).
 */
export async function loadTokenizer(path: string, opts: LoadTokenizerOptions = {}): Promise<TextTokenizer> {
  const { lowercase = true } = opts;
  checkBool(lowercase, 'lowercase');
  if (extname(path).toLowerCase() === '.json') {
    checkFile(path, 'tokenizer.json');
    checkTokenizerJson(path);
    let hf: Tokenizer;
    try {
      hf = Tokenizer.fromFile(path);
    } catch (e) {
      throw new ClozeError('E_VALUE', `Expected a valid tokenizer.json for tokenizer but received '${path}' (${(e as Error).message})`);
    }
    return new TextTokenizer(hf, path);
  }
  const tokens: string[] = [];
  const seen = new Map<string, number>();
  checkFile(path, 'vocab.txt');
  for await (const { text, line } of readLines(path)) {
    const tok = text.trim();
    if (tok === '') throw new ClozeError('E_VALUE', `Expected a token for ${at(path, line)} but received an empty line`);
    const first = seen.get(tok);
    if (first !== undefined) {
      throw new ClozeError('E_VALUE', `Expected a unique token for ${at(path, line)} but received ${describe(tok)}, already on line ${first}`);
    }
    seen.set(tok, line);
    tokens.push(tok);
  }
  if (tokens.length === 0) throw new ClozeError('E_VALUE', `Expected at least one token for tokenizer but received an empty file '${path}'`);
  return fromTokens(tokens, lowercase, path);
}

function fromTokens(tokens: readonly string[], lowercase: boolean, source?: string): TextTokenizer {
  const vocab: Record<string, number> = {};
  tokens.forEach((t, i) => { vocab[t] = i; });
  const hf = bertTokenizer(WordPiece.init(vocab, { unkToken: '[UNK]', continuingSubwordPrefix: '##' }), lowercase);
  const tok = new TextTokenizer(hf, source);
  hf.addSpecialTokens([...SPECIAL_TOKENS]);
  hf.setPostProcessor(bertProcessing(['[SEP]', tok.sepId], ['[CLS]', tok.clsId]));
  return tok;
}

function bertTokenizer(model: ReturnType<typeof WordPiece.init>, lowercase: boolean): Tokenizer {
  const hf = new Tokenizer(model);
  hf.setNormalizer(bertNormalizer({ lowercase }));
  hf.setPreTokenizer(bertPreTokenizer());
  hf.setDecoder(wordPieceDecoder('##', true));
  return hf;
}

/**
 * What the binding accepts but fails on later: a model whose unknown token is not in its vocabulary (every word
 * outside the vocabulary then fails at encode time), a model section that is not an object.
 */
function checkTokenizerJson(path: string): void {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    // The position only: the parser's message quotes the file's text.
    const pos = /position (\d+)/.exec((e as Error).message)?.[1];
    throw new ClozeError('E_VALUE', `Expected a valid tokenizer.json for tokenizer but received '${path}', which is not JSON${pos ? ` (at byte ${pos})` : ''}`);
  }
  const model = (parsed as { model?: unknown } | null)?.model;
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || typeof model !== 'object' || model === null || Array.isArray(model)) {
    throw new ClozeError('E_VALUE', `Expected a tokenizer.json with a model object for tokenizer but received '${path}' without one`);
  }
  const m = model as { type?: unknown; unk_token?: unknown; vocab?: unknown };
  const vocab = m.vocab;
  if (typeof m.unk_token === 'string' && typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab) && !Object.hasOwn(vocab, m.unk_token)) {
    const unk = m.unk_token.length > 40 ? `${m.unk_token.slice(0, 40)}…` : m.unk_token;
    throw new ClozeError('E_VALUE', `Expected the model's unknown token ${JSON.stringify(unk)} in its vocabulary for tokenizer '${path}' but received a vocabulary without it (every word outside the vocabulary would fail to encode)`);
  }
  if ((m.type === 'WordPiece' || m.type === undefined) && typeof vocab === 'object' && vocab !== null && !Array.isArray(vocab) && m.unk_token === undefined && !Object.hasOwn(vocab, '[UNK]')) {
    throw new ClozeError('E_VALUE', `Expected [UNK] in the vocabulary for tokenizer '${path}' but received a vocabulary without it`);
  }
}

function checkFile(path: string, what: string): void {
  if (!existsSync(path) || !statSync(path).isFile()) {
    throw new ClozeError('E_IO', `Expected an existing ${what} for tokenizer but received '${path}'`);
  }
}

function checkBool(v: unknown, name: string): void {
  if (typeof v !== 'boolean') throw new ClozeError('E_VALUE', `Expected a boolean for ${name} but received ${describe(v)}`);
}
