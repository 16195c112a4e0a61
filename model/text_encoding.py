"""Which encoding a lyrics file is in, by a rule that can be tested.

1. A byte-order mark, then strict UTF-8: certain.
2. Western European text in cp1252 (a superset of latin-1's letters): accepted when every
   non-ASCII character it decodes to is a Latin letter or typographic punctuation, those letters
   are at most a third of all letters, and no three of them stand in a row. Chinese, Japanese,
   Korean, Cyrillic or Greek bytes read as cp1252 make runs of accented letters and symbols, so
   they fail the test; short French, German or Spanish texts pass it (a general detector, asked
   first, reads `Café crème, très bien` as cp1250 or cp1257 and misspells it). Where the text
   holds þ ð ý Þ Ð Ý, which are Icelandic in cp1252 and Turkish ş ğ ı Ş Ğ İ in cp1254 (the two
   differ in nothing else), it is read as cp1254: Turkish lyrics are far the more common.
3. Anything else: charset-normalizer, limited to the encodings lyrics corpora really hold. Its
   guess is *weak* when little evidence decided it (fewer than 8 non-ASCII characters) or the
   decoded text looks noisy; callers warn and record the encoding.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# What charset-normalizer may choose from in step 3, most common in lyrics corpora first.
CORPUS_ENCODINGS = ("gb18030", "big5", "cp932", "euc_jp", "cp949", "cp1251", "koi8_r", "cp1250", "cp1253",
                    "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "iso8859_2", "iso8859_15")
TURKISH_IN_CP1252 = set("þðýÞÐÝ")
# cp1252's own marks (curly quotes, dashes, the euro, daggers ...): beside Latin letters they say
# Western European, where the Baltic and Central European pages read the letters as others
TYPOGRAPHIC = set("‘’‚“”„–—…«»‹›¡¿°·´¨ª º§¶•™©®€†‡‰ˆ˜\u00a0")
MAX_ACCENTED_SHARE = 1 / 3
WEAK_EVIDENCE = 8      # non-ASCII characters: fewer decided a weak guess
NOISY = 0.1            # charset-normalizer's chaos above this: a weak guess


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str
    weak: bool  # the encoding was guessed on little or noisy evidence


def looks_western(text: str) -> bool:
    """Whether `text` reads as Latin-script prose (the test of rule 2)."""
    letters = accented = run = 0
    for ch in text:
        if ch.isalpha():
            letters += 1
        if ord(ch) < 128:
            run = 0
            continue
        if ch in TYPOGRAPHIC:
            run = 0
            continue
        if not (ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")):
            return False
        accented += 1
        run += 1
        if run >= 3:
            return False
    return accented <= MAX_ACCENTED_SHARE * letters


def decode_text(raw: bytes) -> DecodedText | None:
    """`raw` as text by the rule above; None when no candidate encoding decodes it."""
    for bom, name in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            try:
                return DecodedText(raw.decode(name), name.replace("-sig", ""), False)
            except UnicodeDecodeError:
                break
    try:
        return DecodedText(raw.decode("utf-8"), "utf-8", False)
    except UnicodeDecodeError:
        pass
    try:
        western = raw.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and looks_western(western):
        if TURKISH_IN_CP1252 & set(western):
            return DecodedText(raw.decode("cp1254"), "cp1254", False)
        return DecodedText(western, "cp1252", False)
    from charset_normalizer import from_bytes

    best = from_bytes(raw, cp_isolation=list(CORPUS_ENCODINGS)).best()
    if best is None:
        return None
    text = str(best)
    evidence = sum(1 for ch in text if ord(ch) >= 128)
    return DecodedText(text, best.encoding, evidence < WEAK_EVIDENCE or best.chaos > NOISY)
