"""Timed lyrics (LRC): every variant users' files come in reads, writes back and reads the same;
malformed files are one error that names the line."""
import pytest

from autosong.model.lrc import LrcError, LrcLine, parse_lrc, write_lrc

VARIANTS = """\ufeff[ti:A Song]
[ar:Someone]
[length:03:12]
[#:a comment]
[offset:+250]

[00:01.00]first line
[00:03.5][01:10.25]the chorus, sung twice
[00:05:40]a colon stamp
[00:07.123]milliseconds
[00:09]no fraction
[00:12.00]<00:12.00>word <00:12.40>by <00:12.90>word
"""


def test_every_variant_reads_and_round_trips():
    lrc = parse_lrc(VARIANTS)
    assert lrc.tags == {"ti": "A Song", "ar": "Someone", "length": "03:12", "#": "a comment", "offset": "+250"}
    starts = [round(line.start, 3) for line in lrc.lines]
    # the offset (+250 ms: lyrics shown sooner) is taken off every stamp; the chorus sings twice, in order
    assert starts == [0.75, 3.25, 5.15, 6.873, 8.75, 11.75, 70.0]
    assert [line.text for line in lrc.lines] == ["first line", "the chorus, sung twice", "a colon stamp", "milliseconds",
                                                 "no fraction", "word by word", "the chorus, sung twice"]
    assert lrc.lines[5].words == [(11.75, "word"), (12.15, "by"), (12.65, "word")]
    assert lrc.text.splitlines()[-1] == "the chorus, sung twice"
    again = parse_lrc(write_lrc(lrc.lines, {"ti": "A Song"}))
    assert [(round(a.start, 2), a.text, [(round(t, 2), w) for t, w in a.words]) for a in again.lines] == \
        [(round(b.start, 2), b.text, [(round(t, 2), w) for t, w in b.words]) for b in lrc.lines]
    assert again.tags == {"ti": "A Song"}


def test_writing_what_was_generated_reads_back():
    lines = [LrcLine(0.0, "[verse]"), LrcLine(1.234, "你好 世界"), LrcLine(61.5, "la la la")]
    text = write_lrc(lines)
    assert text.splitlines() == ["[00:00.00][verse]", "[00:01.23]你好 世界", "[01:01.50]la la la"]
    assert [(round(line.start, 2), line.text) for line in parse_lrc(text).lines] == [(0.0, "[verse]"), (1.23, "你好 世界"),
                                                                                   (61.5, "la la la")]


@pytest.mark.parametrize("source,line,words", [
    ("[00:01.00]one\n[00:61.00]two\n", 2, "61 seconds"),
    ("[00:01.00]one\n[0l:02.00]two\n", 2, "not a time stamp"),
    ("[00:01.00]one\njust words\n", 2, "has no time stamp"),
    ("[00:05.00]one\n[00:02.00]two\n", 2, "comes before the line above it"),
    ("[offset:soon]\n[00:01.00]one\n", None, "not a whole number of milliseconds"),
])
def test_a_malformed_file_names_its_line(source, line, words):
    with pytest.raises(LrcError) as err:
        parse_lrc(source)
    assert words in str(err.value)
    if line is not None:
        assert str(err.value).startswith(f"line {line}:")
