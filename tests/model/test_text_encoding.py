"""The lyrics encoding rule (model/text_encoding.py): what a corpus really holds comes back as written."""
import pytest

from autosong.model.text_encoding import decode_text

CASES = [  # (text, the encoding it is saved in, the encoding the rule must name)
    ("[verse]\nCafé crème, très bien, déjà vu\nà la française, garçon\n", "latin-1", "cp1252"),
    ("Größe Straße, schön übermäßig", "cp1252", "cp1252"),
    ("¿Qué pasó? Mañana, corazón", "latin-1", "cp1252"),
    ("It’s “fine” — really…", "cp1252", "cp1252"),
    ("L’été, c’est “déjà vu” – 5 € la crème / à la française, garçon", "cp1252", "cp1252"),  # read as cp1257
    ("Il coûte 5 € la crème / à la française, garçon", "cp1252", "cp1252"),  # read as cp1250, weak
    ("Prix : 20 € † – « très cher » ‰", "cp1252", "cp1252"),
    ("Çok güzel, şarkı söyle", "cp1254", "cp1254"),
    ("床前明月光，疑是地上霜。举头望明月，低头思故乡。", "gb18030", "gb18030"),
    ("[verse]\n月亮代表我的心\n你问我爱你有多深", "gb18030", "gb18030"),
    ("月亮代表我的心 你問我愛你有多深", "big5", "big5"),
    ("夜空ノムコウ\n僕らは何を", "shift_jis", "cp932"),
    ("Ой, то не вечер, то не вечер", "cp1251", "cp1251"),
    ("사랑해요 너를 정말로", "euc_kr", "cp949"),
    ("Zażółć gęślą jaźń", "cp1250", "cp1250"),
    ("θα με αγαπάς", "cp1253", "cp1253"),
    ("plain words\nla la", "ascii", "utf-8"),
    ("naïve ☂ 歌", "utf-8", "utf-8"),
    ("\ufeffbom first", "utf-8", "utf-8"),
]


@pytest.mark.parametrize("text,saved_as,named", CASES, ids=[c[1] + ":" + c[0][:12] for c in CASES])
def test_lyrics_come_back_as_written(text, saved_as, named):
    decoded = decode_text(text.encode(saved_as))
    assert decoded.encoding == named and decoded.text == text.lstrip("\ufeff") and not decoded.weak


def test_a_guess_on_little_evidence_is_weak():
    decoded = decode_text("あなたが好き".encode("euc_jp"))  # 12 bytes: too few to decide
    assert decoded is not None and decoded.weak
