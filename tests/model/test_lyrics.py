from autosong.model.lyrics import VOCAB_FILE, LyricsTokenizer, normalize_genre, normalize_lyrics


def tokens_of(tokenizer, ids):
    return [tokenizer.tokens[i] for i in ids]


def test_known_chinese_line(tokenizer):
    ids = tokenizer.encode("床前明月光", genre_slot=0)
    assert tokens_of(tokenizer, ids) == ["<genre:0>", "chuang2", "qian2", "ming2", "yue4", "guang1"]


def test_mixed_line_with_tags_and_line_breaks(tokenizer):
    ids = tokenizer.encode("[Chorus x2]\r\n我爱你 Baby！\n", genre_slot=3)
    assert tokens_of(tokenizer, ids) == [
        "<genre:3>", "[chorus]", "<nl>", "wo3", "ai4", "ni3", "<sp>", "b", "a", "b", "y", "!"]


def test_neutral_tone_is_five_and_unknown_tags_are_other(tokenizer):
    assert tokens_of(tokenizer, tokenizer.encode("[Spoken word]\n你的")[1:]) == ["<tag:other>", "<nl>", "ni3", "de5"]


def test_other_scripts_fall_back_to_bytes_and_round_trip(tokenizer):
    ids = tokenizer.encode("привет мир")
    assert any(tokenizer.tokens[i].startswith("<0x") for i in ids)
    assert tokenizer.decode(ids) == "<genre:0>\nпривет мир"


def test_ids_round_trip_to_readable_text(tokenizer):
    text = "[verse]\nHello, World!\n\n[chorus]\n床前明月光 la la"
    decoded = tokenizer.decode(tokenizer.encode(text, 1), genre_names=["unknown", "pop"])
    assert decoded == "<genre:pop>\n[verse]\nhello, world!\n\n[chorus]\nchuang2 qian2 ming2 yue4 guang1 la la"


def test_vocabulary_is_fixed_and_covers_pypinyin():
    from pypinyin import Style, lazy_pinyin

    tok = LyricsTokenizer(VOCAB_FILE)
    assert tok.vocab_size == 2808 and tok.tokens[:5] == ["<pad>", "<unk>", "<eos>", "<nl>", "<sp>"]
    text = "春眠不觉晓处处闻啼鸟夜来风雨声花落知多少女绿嗯哦"
    for syl in lazy_pinyin(text, style=Style.TONE3, neutral_tone_with_five=True):
        assert syl in tok.ids, syl
    assert tok.unk_id not in tok.encode(text)


def test_normalisation():
    assert normalize_lyrics("\ufeff a  b \r\n\r\n\r\n\nc\t d ") == "a b\n\nc d"
    assert normalize_genre(" Hip-Hop, Rap ") == "hip-hop"
    assert normalize_genre("") == "unknown" and normalize_genre(None) == "unknown"


def test_word_slots_point_at_each_words_first_id(tokenizer):
    from autosong.model.lyrics import lyric_words

    text = "[verse]\nHello  world, my [x] friend\n\n[chorus] 我爱你 la-la\n"
    ids, words, slots = tokenizer.encode(text), lyric_words(text), tokenizer.word_slots(text)
    assert words == ["hello", "world", "my", "friend", "我爱你", "la", "la"]  # tags are not words
    assert [tokenizer.tokens[ids[s]] for s in slots] == ["h", "w", "m", "f", "wo3", "l", "l"]
    assert slots == sorted(slots) and slots[3] - slots[2] == 7  # "my [x] " is 7 ids: a mid-line tag is text
