/** SpamAssassin-style messages to subject + body text, on committed fixture emails. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  decodeEncodedWords, decodeEntities, decodeQuotedPrintable, decodeWindows1252, emailText, looksLikeHtml, parseEmail, stripHtml,
} from '../src/data/email.js';

// The npm package hands messages over as JS strings; latin1 keeps each fixture byte as one character, as 7-bit mail is.
const fx = (name: string): string => readFileSync(join(import.meta.dirname, 'fixtures', 'email', name), 'latin1');

describe('parseEmail on fixture messages', () => {
  it('drops the mbox line and the headers, unfolds the subject, keeps the first of a repeated field, tidies blank lines', () => {
    expect(parseEmail(fx('plain.eml'))).toEqual({
      subject: 'Re: the build is broken again',
      // An address in angle brackets is not markup.
      body: "Hi all,\n\nthe nightly build fails in <b.smith@example.org>'s module.\n\nCheers,\nkre",
    });
  });

  it('decodes RFC 2047 subjects (Q and B, different charsets, no space between adjacent encoded words)', () => {
    expect(parseEmail(fx('encoded-subject.eml')).subject).toBe('Café crème✓ deal');
    expect(parseEmail(fx('iso-2022-jp.eml')).subject).toBe('件名');
  });

  it('multipart/mixed: base64 text parts through their charsets, the image and the text attachment dropped, preamble and epilogue dropped', () => {
    expect(parseEmail(fx('multipart-base64.eml'))).toEqual({
      subject: 'Invoice',
      body: 'Dear friend,\nthe price is 30€ only – today.\n\nGrüße aus Köln',
    });
  });

  it('multipart/alternative: the quoted-printable plain part (soft breaks, =XX bytes, padding), not the HTML one', () => {
    expect(parseEmail(fx('alternative-qp.eml')).body).toBe(
      'The café opens at 9=00. This line is soft-broken, and this one ends in spaces\nLast line.',
    );
  });

  it('text/html: head, style, script and comments dropped, block tags as line breaks, entities decoded', () => {
    expect(parseEmail(fx('html.eml'))).toEqual({
      subject: 'FREE money!!!',
      body: 'Get rich now & forever – it\'s "easy" éé &bogus;\n\nClick\nhere',
    });
  });

  it('HTML mislabelled as text/plain is stripped too', () => {
    expect(parseEmail(fx('html-as-plain.eml')).body).toBe('Thank You,\n\nClick here');
  });

  it('7-bit ISO-2022-JP text is decoded from its escape sequences', () => {
    expect(parseEmail(fx('iso-2022-jp.eml')).body).toBe('お世話になっております');
  });

  it('a forwarded message/rfc822 contributes its subject and body, not its headers', () => {
    expect(parseEmail(fx('forwarded.eml')).body).toBe('See below.\n\nlunch tomorrow?\n\nNoon at the usual place.');
  });

  it('multipart/signed with CRLF line ends: the signed part only', () => {
    expect(parseEmail(fx('signed-crlf.eml'))).toEqual({ subject: 'signed', body: 'Signed text.' });
  });

  it('a stray blank line inside the headers does not put the MIME fields in the body', () => {
    // As in the corpus's spam-1/00481: empty folds of the Subject, then Content-Type after them.
    expect(parseEmail(fx('blank-line-in-headers.eml')).body).toBe('The real text.');
    // A blank line followed by text is the end of the headers, as usual.
    expect(parseEmail('Subject: s\n\nTo: not a header block\nbody').body).toBe('To: not a header block\nbody');
  });

  it('a message without text parts keeps its subject', () => {
    expect(parseEmail(fx('image-only.eml'))).toEqual({ subject: 'only a picture', body: '' });
    expect(emailText(fx('image-only.eml'))).toBe('only a picture');
    expect(emailText(fx('signed-crlf.eml'))).toBe('signed\n\nSigned text.');
  });
});

describe('decoders', () => {
  it('quoted-printable: soft line breaks, hex escapes, an "=" not followed by hex kept', () => {
    expect(Buffer.from(decodeQuotedPrintable('a=3Db=\nc =E9\nx=zz')).toString('latin1')).toBe('a=bc \xe9\nx=zz');
  });

  it('windows-1252 maps 0x80–0x9F (Node 20 reads them as C1 controls)', () => {
    expect(decodeWindows1252(Uint8Array.from([0x80, 0x93, 0x94, 0x99, 0xe9, 0x41]))).toBe('€“”™éA');
  });

  it('encoded words: an unknown charset falls back to UTF-8 or windows-1252; plain words around them kept', () => {
    expect(decodeEncodedWords('Re: =?x-unknown?Q?na=EFve?= test')).toBe('Re: naïve test');
    expect(decodeEncodedWords('no encoding here')).toBe('no encoding here');
  });

  it('entities: named, decimal, hex, invalid code points dropped, unknown names kept', () => {
    expect(decodeEntities('&lt;&#65;&#x42;&copy;&yuml;&#xD800;&nosuch;')).toBe('<AB©ÿ&nosuch;');
  });

  it('stripHtml and looksLikeHtml', () => {
    expect(stripHtml('<div>one</div><span>two</span> <!-- gone -->three')).toBe('\none\ntwo three');
    expect(looksLikeHtml('<p>a</p>')).toBe(false);
    expect(looksLikeHtml('<p>a</p><br><font size=2>b</font>')).toBe(true);
    expect(looksLikeHtml('write to <b.smith@example.org> or <a.jones@example.org>, <i.x@example.org>')).toBe(false);
  });
});
