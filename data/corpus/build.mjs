#!/usr/bin/env node
// Builds data/corpus/default.txt, the small default pre-training corpus that
// ships with cloze, from the WordNet 3.0 database.
//
// Requires the Debian/Ubuntu package `wordnet-base` (WordNet 3.0 data files in
// /usr/share/wordnet):
//
//   apt-get update && apt-get install -y wordnet-base
//   node data/corpus/build.mjs            # or: node data/corpus/build.mjs /path/to/wordnet/dict
//
// Licence: WordNet 3.0 licence (permissive, BSD-like); see data/corpus/README.md
// and data/corpus/LICENSE-WordNet, which must accompany the corpus.
//
// Output: one document per line, one line per WordNet synset that (a) was
// sense-tagged at least once in the Semantic Concordance (SemCor), i.e. a
// common sense, per the tagsense_cnt field of index.<pos>, and (b) has at
// least one example sentence in its gloss:
//
//   <lemma>, <lemma>, ...: <gloss as in WordNet: definition; "example"; ...>
//
// Lemmas have '_' replaced by ' ' and adjective markers (a)/(p)/(ip) removed;
// duplicate lemmas within a synset are dropped; whitespace is collapsed.
// Lines are UTF-8 (in practice ASCII), non-empty, deduplicated (first occurrence
// kept), in a fixed order: noun, verb, adj, adv; within a file, by synset offset
// (file order). The script is deterministic: same input files -> same bytes.

import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const WN_DIR = process.argv[2] ?? "/usr/share/wordnet";
const OUT = join(dirname(fileURLToPath(import.meta.url)), "default.txt");
const POS_FILES = ["data.noun", "data.verb", "data.adj", "data.adv"];

/** Parse one synset line of a WordNet data.<pos> file (see wndb(5WN)). */
function parseSynset(line) {
  const bar = line.indexOf(" | ");
  if (bar < 0) throw new Error(`no gloss separator in line: ${line.slice(0, 80)}`);
  const fields = line.slice(0, bar).trim().split(" ");
  // synset_offset lex_filenum ss_type w_cnt (word lex_id)* p_cnt ...
  const wCnt = parseInt(fields[3], 16);
  const words = [];
  for (let i = 0; i < wCnt; i++) {
    const w = fields[4 + 2 * i]
      .replace(/\((a|p|ip)\)$/, "") // adjective syntactic markers
      .replace(/_/g, " ");
    if (!words.includes(w)) words.push(w);
  }
  const gloss = line.slice(bar + 3).replace(/\s+/g, " ").trim();
  return { offset: fields[0], words, gloss };
}

/**
 * Offsets of the synsets of one part of speech that were sense-tagged at least
 * once in the Semantic Concordance (SemCor), i.e. "common" senses. In an
 * index.<pos> line (lemma pos synset_cnt p_cnt [ptr_symbol...] sense_cnt
 * tagsense_cnt synset_offset...), the first tagsense_cnt offsets are the
 * tagged senses, ranked by frequency.
 */
function taggedSynsets(indexFile) {
  const tagged = new Set();
  for (const line of readFileSync(join(WN_DIR, indexFile), "utf8").split("\n")) {
    if (!line || line.startsWith(" ")) continue; // licence header / blank
    const f = line.trim().split(" ");
    const pCnt = parseInt(f[3], 10);
    const tagsenseCnt = parseInt(f[5 + pCnt], 10);
    const offsets = f.slice(6 + pCnt);
    for (let i = 0; i < tagsenseCnt; i++) tagged.add(offsets[i]);
  }
  return tagged;
}

const seen = new Set();
const docs = [];
const stats = {};
for (const file of POS_FILES) {
  const text = readFileSync(join(WN_DIR, file), "utf8");
  const tagged = taggedSynsets(file.replace("data.", "index."));
  let total = 0;
  let kept = 0;
  for (const line of text.split("\n")) {
    if (!/^\d{8} /.test(line)) continue; // skip the licence header (lines start with two spaces) and blanks
    total++;
    const { offset, words, gloss } = parseSynset(line);
    if (!tagged.has(offset)) continue; // keep only senses attested in SemCor
    if (!gloss.includes('"')) continue; // ... that have at least one example sentence
    const doc = `${words.join(", ")}: ${gloss}`;
    if (!doc.trim() || seen.has(doc)) continue;
    seen.add(doc);
    docs.push(doc);
    kept++;
  }
  stats[file] = { synsets: total, kept };
}

const out = docs.join("\n") + "\n";
writeFileSync(OUT, out, "utf8");
console.log(JSON.stringify({ out: OUT, lines: docs.length, bytes: Buffer.byteLength(out), perFile: stats }, null, 2));
