"""Which word each letter slot of the lyric memory spells: a hash of the word's ids, so that a
Latin-script word, spelled letter by letter, can carry one code for the whole word on each of its
slots, as a toned pinyin syllable carries its own id (model.word_buckets). Computed on the device
from the ids alone: the data, the tokenizer and the sampler are unchanged, and a word never seen
in training still lands in a bucket, beside its letters, which still say how it is spelled."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from autosong.model.lyrics import default_tokenizer, id_kind

MAX_WORD = 24  # letters a hash reads; a longer word shares the bucket of its first MAX_WORD
_MULTIPLIERS = [(2654435761 * (k + 1)) % (1 << 31) | 1 for k in range(MAX_WORD)]  # odd, fixed: one per place


def letter_mask() -> torch.Tensor:
    """[vocab] bool: which lyric ids are letters (model/lyrics.id_kind)."""
    return torch.tensor([id_kind(tok) == "letter" for tok in default_tokenizer().tokens])


def word_buckets(ids: torch.Tensor, is_letter: torch.Tensor, buckets: int) -> torch.Tensor:
    """ids [B, L] -> [B, L]: 1 + (hash of the word a letter slot belongs to) mod buckets, the same
    on every letter of one word; 0 where the slot is not a letter (a syllable, a space, a line
    break, a tag, the genre token, padding)."""
    B, L = ids.shape
    letter = is_letter[ids]
    start = letter & ~F.pad(letter[:, :-1], (1, 0), value=False)
    word = start.long().cumsum(1) * letter  # 1, 2, ... per word, 0 off words
    at = torch.arange(L, device=ids.device).expand(B, L)
    in_word = at - torch.where(start, at, torch.zeros_like(at)).cummax(1).values  # place within its word
    mult = torch.tensor(_MULTIPLIERS, device=ids.device)[in_word.clamp(max=MAX_WORD - 1)]
    part = torch.where(letter & (in_word < MAX_WORD), (ids.long() + 1) * mult, torch.zeros_like(mult))
    sums = torch.zeros(B, L + 1, dtype=torch.long, device=ids.device).scatter_add_(1, word, part)
    return torch.where(letter, 1 + sums.gather(1, word) % buckets, torch.zeros_like(word))
