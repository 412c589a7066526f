/**
 * Raw RFC 822 / MIME messages (the SpamAssassin corpus) to the text a
 * classifier reads: the subject and the body text. Headers are dropped;
 * multipart bodies are walked for their text parts (an alternative's plain
 * part is preferred to its HTML one); quoted-printable and base64 text parts
 * are decoded through their charset; HTML is reduced to its text. Parts that
 * are not text (images, signatures, attachments) are dropped.
 *
 * The messages arrive as JS strings (the npm package stores them as UTF-8
 * JSON), so only encoded parts can be decoded from their declared charset;
 * 8-bit text the package could not read as UTF-8 is already U+FFFD there,
 * and is dropped here rather than fed to a tokenizer as noise.
 */

export interface ParsedEmail {
  /** The Subject header, RFC 2047 encoded words decoded, whitespace collapsed ('' when absent). */
  subject: string;
  /** The body text: text parts decoded, HTML stripped, paragraphs kept, whitespace tidied. */
  body: string;
}

/** Header fields of one entity, names lower-cased; a repeated field keeps its first value. */
type Headers = Map<string, string>;

interface Entity {
  headers: Headers;
  body: string;
}

/** Parses a message into its subject and body text. */
export function parseEmail(raw: string): ParsedEmail {
  const msg = splitEntity(stripMboxLine(raw.replace(/\r\n?/g, '\n')));
  const subject = collapse(decodeEncodedWords(msg.headers.get('subject') ?? '').replace(/\uFFFD/g, ''));
  return { subject, body: tidy(entityText(msg, 0)) };
}

/** The text the classifier sees: the subject, a blank line, the body (either may be empty). */
export function emailText(raw: string): string {
  const { subject, body } = parseEmail(raw);
  return [subject, body].filter((s) => s !== '').join('\n\n');
}

/** An mbox file's "From sender date" separator line is not a header. */
function stripMboxLine(s: string): string {
  return s.startsWith('From ') ? s.slice(s.indexOf('\n') + 1) : s;
}

/**
 * Headers up to the first blank line; a line starting with white space
 * continues the previous field. A line that is neither a field nor a
 * continuation ends the headers (broken spam headers run into the body).
 */
function splitEntity(s: string): Entity {
  const headers: Headers = new Map();
  const lines = s.split('\n');
  let i = 0;
  // The field that continuation lines extend; null after a repeated field, whose value is not kept.
  let open: string | null = null;
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === '') {
      if (!headers.has('content-type') && headersGoOn(lines, i + 1)) continue;
      i++;
      break;
    }
    if (/^[ \t]/.test(line)) {
      if (open !== null) headers.set(open, headers.get(open)! + ' ' + line.trim());
      continue;
    }
    const m = FIELD.exec(line);
    if (!m) break;
    const name = m[1]!.toLowerCase();
    if (headers.has(name)) {
      open = null;
    } else {
      headers.set(name, m[2]!);
      open = name;
    }
  }
  return { headers, body: lines.slice(i).join('\n') };
}

const FIELD = /^([!-9;-~]+):[ \t]*(.*)$/;

/**
 * Some messages in the corpus have a stray blank line inside their headers
 * (a folded Subject with an empty fold, then To:, Content-Type: …), which
 * would put the MIME fields in the body. When the headers so far lack a
 * Content-Type and what follows the blank line(s) is header fields, folds
 * and blank lines up to a Content-Type field, the headers go on.
 */
function headersGoOn(lines: readonly string[], j: number): boolean {
  for (let k = j; k < lines.length; k++) {
    const l = lines[k]!;
    if (l === '' || /^[ \t]/.test(l)) continue;
    if (!FIELD.test(l)) return false;
    if (/^content-type:/i.test(l)) return true;
  }
  return false;
}

interface ContentType {
  type: string;
  params: Map<string, string>;
}

/** "text/plain; charset=\"iso-8859-1\"" → type and lower-cased parameter names. Missing: text/plain (RFC 2045 §5.2). */
function contentType(headers: Headers): ContentType {
  const v = headers.get('content-type');
  const params = new Map<string, string>();
  if (!v) return { type: 'text/plain', params };
  const [type, ...rest] = splitParams(v);
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    let val = p.slice(eq + 1).trim();
    if (val.startsWith('"')) val = val.slice(1, val.endsWith('"') && val.length > 1 ? -1 : undefined);
    params.set(p.slice(0, eq).trim().toLowerCase(), val);
  }
  return { type: (type ?? '').trim().toLowerCase() || 'text/plain', params };
}

/** Splits on ';' outside double quotes. */
function splitParams(v: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (const c of v) {
    if (c === '"') quoted = !quoted;
    if (c === ';' && !quoted) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

/** Nested messages deeper than this are not walked (a loop of forwards, or a crafted message). */
const MAX_DEPTH = 8;

function entityText(e: Entity, depth: number): string {
  if (depth > MAX_DEPTH) return '';
  const ct = contentType(e.headers);
  const [major, minor] = ct.type.split('/') as [string, string | undefined];
  if (major === 'multipart') {
    const boundary = ct.params.get('boundary');
    const parts = boundary ? splitMultipart(e.body, boundary) : null;
    // No boundary, or none found: the body is most likely text a broken mailer labelled multipart.
    if (!parts || parts.length === 0) return plainOrHtml(e.body);
    if (minor === 'alternative') {
      const plain = parts.find((p) => contentType(p.headers).type === 'text/plain');
      const pick = plain ?? parts.find((p) => contentType(p.headers).type.startsWith('text/')) ?? parts[0]!;
      return entityText(pick, depth + 1);
    }
    if (minor === 'signed') return entityText(parts[0]!, depth + 1);
    return parts
      .map((p) => entityText(p, depth + 1))
      .filter((t) => t.trim() !== '')
      .join('\n\n');
  }
  if (ct.type === 'message/rfc822') {
    const inner = splitEntity(decodeTransfer(e.body, e.headers, null));
    const subject = collapse(decodeEncodedWords(inner.headers.get('subject') ?? ''));
    return [subject, entityText(inner, depth + 1)].filter((s) => s.trim() !== '').join('\n\n');
  }
  if (major !== 'text') return '';
  if (minor === 'rfc822-headers') return '';
  // A text attachment (a patch, a log) is not the message's text.
  if (/^\s*attachment\b/i.test(e.headers.get('content-disposition') ?? '')) return '';
  const text = decodeTransfer(e.body, e.headers, ct.params.get('charset') ?? null);
  if (minor === 'html' || minor === 'enriched' || minor === 'richtext') return stripHtml(text);
  return plainOrHtml(text);
}

const HTML_TAG = /<\/?(a|b|i|u|p|br|hr|font|div|span|table|tbody|tr|td|th|img|center|html|head|body|meta|title|style)(\s[^<>]*)?\/?>/gi;

/**
 * A part labelled text/plain (or not labelled) that is in fact HTML, as spam
 * often is: an <html> or <body> tag, or at least three common tags (an
 * address in angle brackets, "<b.smith@host>", is not one).
 */
export function looksLikeHtml(text: string): boolean {
  if (/<(html|body)[\s>]/i.test(text)) return true;
  let n = 0;
  for (const _ of text.matchAll(HTML_TAG)) if (++n >= 3) return true;
  return false;
}

function plainOrHtml(text: string): string {
  return looksLikeHtml(text) ? stripHtml(text) : text;
}

/** The parts between "--boundary" lines, up to "--boundary--"; preamble and epilogue dropped. */
function splitMultipart(body: string, boundary: string): Entity[] | null {
  const lines = body.split('\n');
  const delim = '--' + boundary;
  const parts: string[][] = [];
  let cur: string[] | null = null;
  for (const line of lines) {
    const t = line.trimEnd();
    if (t === delim || t === delim + '--') {
      if (cur) parts.push(cur);
      if (t === delim + '--') {
        cur = null;
        break;
      }
      cur = [];
      continue;
    }
    if (cur) cur.push(line);
  }
  if (cur) parts.push(cur); // a missing closing delimiter: keep what came
  if (parts.length === 0) return null;
  return parts.map((p) => splitEntity(p.join('\n')));
}

/** Undoes Content-Transfer-Encoding and decodes the bytes from `charset` (7bit/8bit text is already a string). */
function decodeTransfer(body: string, headers: Headers, charset: string | null): string {
  const cte = (headers.get('content-transfer-encoding') ?? '').trim().toLowerCase();
  let bytes: Uint8Array;
  if (cte === 'quoted-printable') bytes = decodeQuotedPrintable(body);
  else if (cte === 'base64') bytes = decodeBase64(body);
  // 7bit text in a stateful charset (ISO-2022-JP) is ASCII bytes still to be decoded; other 7bit or 8bit text is already text.
  else if (charset !== null && /^[\x00-\x7f]*$/.test(body) && body.includes('\x1b')) bytes = Buffer.from(body, 'latin1');
  else return body;
  return decodeBytes(bytes, charset);
}

/** RFC 2045 §6.7: "=XX" is a byte, "=" at a line's end a soft break; other characters stand for themselves. */
export function decodeQuotedPrintable(s: string): Uint8Array {
  const out: number[] = [];
  const lines = s.split('\n');
  lines.forEach((rawLine, li) => {
    const line = rawLine.replace(/[ \t]+$/, ''); // trailing white space is padding (§6.7 rule 3)
    let soft = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i]!;
      if (c === '=') {
        if (i === line.length - 1) {
          soft = true;
          break;
        }
        const hex = line.slice(i + 1, i + 3);
        if (/^[0-9A-Fa-f]{2}$/.test(hex)) {
          out.push(parseInt(hex, 16));
          i += 2;
          continue;
        }
      }
      const code = c.codePointAt(0)!;
      if (code < 0x80) out.push(code);
      else {
        // Not allowed in QP, but seen: keep the character as UTF-8.
        const enc = Buffer.from(String.fromCodePoint(code), 'utf8');
        out.push(...enc);
        if (code > 0xffff) i++;
      }
    }
    if (!soft && li < lines.length - 1) out.push(10);
  });
  return Uint8Array.from(out);
}

/** Base64 ignoring line breaks and any other non-alphabet characters, as mail readers do. */
export function decodeBase64(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s.replace(/[^A-Za-z0-9+/]/g, ''), 'base64'));
}

/** Bytes to text by the declared charset; an unknown or missing one is read as UTF-8 if valid, else windows-1252. */
function decodeBytes(bytes: Uint8Array, charset: string | null): string {
  const label = (charset ?? '').trim().toLowerCase();
  if (label !== '' && label !== 'unicode') {
    let decoder: TextDecoder | null = null;
    try {
      decoder = new TextDecoder(label);
    } catch {
      // an unknown label: fall through
    }
    if (decoder) return decoder.encoding === 'windows-1252' ? decodeWindows1252(bytes) : decoder.decode(bytes);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return decodeWindows1252(bytes);
  }
}

// windows-1252's 0x80–0x9F (the WHATWG table; the five unassigned bytes map to the C1 controls).
const CP1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

/**
 * windows-1252, which the WHATWG encoding standard also uses for the labels
 * us-ascii and iso-8859-1. Node 20's TextDecoder reads it as ISO-8859-1
 * (0x80 → U+0080 instead of €), so the 0x80–0x9F row is mapped here.
 */
export function decodeWindows1252(bytes: Uint8Array): string {
  let out = '';
  for (let i = 0; i < bytes.length; i += 8192) {
    const chunk = Array.from(bytes.subarray(i, i + 8192), (b) => (b >= 0x80 && b < 0xa0 ? CP1252_HIGH[b - 0x80]! : b));
    out += String.fromCharCode(...chunk);
  }
  return out;
}

/** RFC 2047 "=?charset?Q|B?text?=" words in a header; the white space between two encoded words is dropped. */
export function decodeEncodedWords(s: string): string {
  const re = /=\?([^?\s]+)\?([QqBb])\?([^?\s]*)\?=/g;
  let out = '';
  let last = 0;
  let prevEncodedEnd = -1;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const between = s.slice(last, m.index);
    if (!(prevEncodedEnd === last && /^\s*$/.test(between))) out += between;
    const [, charset, enc, text] = m as unknown as [string, string, string, string];
    const cs = charset.replace(/\*.*$/, ''); // RFC 2231 language suffix
    const bytes = enc.toUpperCase() === 'B' ? decodeBase64(text) : decodeQuotedPrintable(text.replace(/_/g, ' '));
    out += decodeBytes(bytes, cs);
    last = re.lastIndex;
    prevEncodedEnd = last;
  }
  return out + s.slice(last);
}

const NAMED_ENTITIES: Record<string, string> = {
  amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: '\u00a0',
  ndash: '–', mdash: '—', lsquo: '‘', rsquo: '’', sbquo: '‚', ldquo: '“', rdquo: '”', bdquo: '„',
  bull: '•', hellip: '…', trade: '™', euro: '€', dagger: '†', Dagger: '‡', permil: '‰', lsaquo: '‹', rsaquo: '›',
  oelig: 'œ', OElig: 'Œ', scaron: 'š', Scaron: 'Š', yuml: 'ÿ', Yuml: 'Ÿ', fnof: 'ƒ', circ: 'ˆ', tilde: '˜',
};
// HTML 4's Latin-1 entities, U+00A1 to U+00FF in order.
'iexcl cent pound curren yen brvbar sect uml copy ordf laquo not shy reg macr deg plusmn sup2 sup3 acute micro para middot cedil sup1 ordm raquo frac14 frac12 frac34 iquest Agrave Aacute Acirc Atilde Auml Aring AElig Ccedil Egrave Eacute Ecirc Euml Igrave Iacute Icirc Iuml ETH Ntilde Ograve Oacute Ocirc Otilde Ouml times Oslash Ugrave Uacute Ucirc Uuml Yacute THORN szlig agrave aacute acirc atilde auml aring aelig ccedil egrave eacute ecirc euml igrave iacute icirc iuml eth ntilde ograve oacute ocirc otilde ouml divide oslash ugrave uacute ucirc uuml yacute thorn'
  .split(' ')
  .forEach((name, i) => (NAMED_ENTITIES[name] = String.fromCodePoint(0xa1 + i)));

/** Decodes &name; &#123; &#x1F; (an unknown name is left as written). */
export function decodeEntities(s: string): string {
  return s.replace(/&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});?/g, (all, ref: string) => {
    if (ref.startsWith('#')) {
      const code = ref[1] === 'x' || ref[1] === 'X' ? parseInt(ref.slice(2), 16) : parseInt(ref.slice(1), 10);
      return code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff) ? String.fromCodePoint(code) : '';
    }
    return NAMED_ENTITIES[ref] ?? all;
  });
}

const BLOCK = /^(p|div|br|tr|li|ul|ol|table|h[1-6]|blockquote|pre|hr|center|dd|dt|dl|title|form|section|article|header|footer)$/i;

/** HTML to text: comments, scripts, styles and the head dropped; block tags become line breaks; entities decoded. */
export function stripHtml(html: string): string {
  let s = html
    .replace(/<!--[\s\S]*?(-->|$)/g, ' ')
    .replace(/<(script|style|head)\b[\s\S]*?<\/\1\s*>/gi, ' ')
    .replace(/<!doctype[^>]*>/gi, ' ');
  s = s.replace(/<\/?([A-Za-z][A-Za-z0-9]*)\b[^>]*>/g, (_all, tag: string) => (BLOCK.test(tag) ? '\n' : ' '));
  // Markup the above left (a stray "<" inside a broken tag) is kept as text.
  s = decodeEntities(s);
  return s
    .split('\n')
    .map((l) => l.replace(/[ \t\u00a0]+/g, ' ').trim())
    .join('\n');
}

function collapse(s: string): string {
  return s.replace(/\s+/g, ' ').trim();
}

/** Line breaks made \\n, trailing spaces and U+FFFD dropped, runs of blank lines reduced to one, the ends trimmed. */
function tidy(s: string): string {
  return s
    .replace(/\uFFFD/g, '')
    .replace(/\r\n?/g, '\n') // decoded parts bring their own CRLFs
    .split('\n')
    .map((l) => l.replace(/[ \t\u00a0]+$/g, ''))
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}
