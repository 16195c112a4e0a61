import torch

from autosong.model.lyrics import default_tokenizer
from autosong.model.word_ids import letter_mask, word_buckets


def buckets_of(lyrics: str, buckets: int = 4096):
    tk = default_tokenizer()
    ids = torch.tensor([tk.encode(lyrics)])
    return [tk.tokens[i] for i in ids[0]], word_buckets(ids, letter_mask(), buckets)[0].tolist()


def test_every_letter_of_a_word_carries_its_word_and_nothing_else_carries_one():
    tokens, b = buckets_of("hello world\nhello 你好 worlds")
    words = {}
    for tok, bucket in zip(tokens, b):
        if len(tok) == 1 and tok.isalpha():
            assert 1 <= bucket <= 4096
        else:  # the genre token, spaces, line breaks, pinyin syllables
            assert bucket == 0, tok
    hello = b[1:6]
    world = b[7:12]
    assert len(set(hello)) == 1 and len(set(world)) == 1 and hello[0] != world[0]
    words = [x for x in b[13:] if x]
    assert words[:5] == hello  # the same word on another line, after other words: the same bucket
    assert words[5] != world[0]  # "worlds" is another word


def test_a_word_is_hashed_by_its_letters_in_order_and_padding_changes_nothing():
    _, ab = buckets_of("ab")
    _, ba = buckets_of("ba")
    assert ab[1] != ba[1]
    tk = default_tokenizer()
    ids = torch.tensor([tk.encode("la la land"), tk.encode("la") + [0] * 8])
    b = word_buckets(ids, letter_mask(), 4096)
    assert b[0, 1] == b[0, 4] == b[1, 1] and b[1, 3:].eq(0).all()
