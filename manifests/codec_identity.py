"""What makes two codecs produce the same codes, and the one check every stage makes with it.

The identity is stored in dataset.json, in each sample's meta.json, in run_config.json and in an
exported bundle's config.json, always as the same three-field JSON object. Two identities are the
same codec when their hashes agree: a local `save_pretrained` copy of the hub weights has another
source name but encodes the same codes.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from autosong.manifests.errors import ManifestError


@dataclass(frozen=True)
class CodecIdentity:
    source: str           # hub id, local directory, "tiny", "test", or an autoencoder run (latent data)
    config_sha256: str
    weights_sha256: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def of(cls, value: "CodecIdentity | dict") -> "CodecIdentity":
        """An identity from its stored JSON object (or itself)."""
        if isinstance(value, CodecIdentity):
            return value
        return cls(value["source"], value["config_sha256"], value["weights_sha256"])

    def same_model(self, other: "CodecIdentity | dict") -> bool:
        other = CodecIdentity.of(other)
        return (self.config_sha256, self.weights_sha256) == (other.config_sha256, other.weights_sha256)

    def words(self) -> str:
        return f"{self.source!r} (weights {self.weights_sha256[:12]})"


def require_same_codec(have: "CodecIdentity | dict", want: "CodecIdentity | dict", what: str, fix: str) -> None:
    """Refuse in one line when `have` and `want` are different models. `what` says whose codes
    these are ("data/dataset.json and the model run/export"), `fix` what to do about it."""

    have, want = CodecIdentity.of(have), CodecIdentity.of(want)
    if not have.same_model(want):
        raise ManifestError(f"{what} come from different codecs, {have.words()} and {want.words()}: {fix}")
