"""The next-token loss weighed by codebook (model.codebook_weights), the auxiliary future loss
(model.future_frames): codebook 0's CE some frames ahead, and the key head's loss (model.song_key)."""
import math

import torch

from autosong.model.transformer import FuturePrediction, SongKey
from autosong.train.losses import future_ce, key_ce, token_ce
from tests.model.test_transformer import batch, tiny


def prediction(probs, targets, valid=None):
    logits = torch.tensor(probs).log()[None, None]  # [1, 1, F, V]
    targets = torch.tensor(targets)[None, None]
    valid = torch.ones_like(targets, dtype=torch.bool) if valid is None else torch.tensor(valid)[None, None]
    return FuturePrediction(logits, targets, valid)


def test_the_loss_is_the_code_cross_entropy_of_real_frames():
    probs = [[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]]
    assert math.isclose(future_ce(prediction(probs, [3, 0])).item(), -(math.log(0.4) + math.log(0.25)) / 2, rel_tol=1e-5)
    assert math.isclose(future_ce(prediction(probs, [3, 0], valid=[True, False])).item(), -math.log(0.4), rel_tol=1e-5)


def test_the_model_predicts_codebook_0_at_each_horizon_inside_the_window():
    model = tiny(pattern="delay", future_frames=(4, 8)).eval()
    codes, lengths, off, ids, mask = batch(T=12)
    *_, future = model(codes, lengths, off, ids, mask, with_future=True)
    B, S, F, V = future.logits.shape
    assert (F, V) == (2, 1024) and future.targets.shape == (B, S, F)
    frames = torch.arange(S)[:, None] + torch.tensor([4, 8])  # the delay pattern: step s predicts frame s of codebook 0
    assert torch.equal(future.valid[0], frames < 12)
    assert torch.equal(future.targets[0][future.valid[0]], codes[0, 0][frames[frames < 12]])


def test_codebook_weights_weigh_each_codebooks_mean_cross_entropy():
    codes, lengths, off, ids, mask = batch(T=12)
    losses = {}
    for weights in [(), (1.0, 1.0), (1.0, 0.0), (3.0, 1.0)]:
        model = tiny(pattern="delay", codebook_weights=weights).eval()
        loss, sums, counts = token_ce(model, *model(codes, lengths, off, ids, mask))
        losses[weights] = loss.item()
    per_cb = (sums / counts).tolist()  # the same model each time (seeded), so the same per-codebook CE
    assert math.isclose(losses[()], losses[(1.0, 1.0)], rel_tol=1e-6)
    assert math.isclose(losses[(1.0, 0.0)], per_cb[0], rel_tol=1e-6)
    n0, n1 = counts.tolist()
    assert math.isclose(losses[(3.0, 1.0)], (3 * per_cb[0] * n0 + per_cb[1] * n1) / (3 * n0 + n1), rel_tol=1e-6)


def test_the_key_loss_weighs_the_keys_heard_and_the_sung_key_is_the_heads_choice_among_them():
    logits = torch.randn(3, 12, requires_grad=True)
    heard = torch.zeros(3, 12, dtype=torch.bool)
    heard[0, 4] = True              # one key heard
    heard[2, [0, 5]] = True         # two fit as well: either is right
    log_p = logits.log_softmax(-1)  # song 1: none heard, no loss
    expected = -(log_p[0, 4] + torch.logsumexp(log_p[2, [0, 5]], 0)) / 2
    loss = key_ce(logits, heard)
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[1].abs().sum() == 0
    assert key_ce(logits, torch.zeros(3, 12, dtype=torch.bool)).item() == 0.0  # none heard: nothing to learn
    sung = SongKey.sung(logits, heard)
    assert sung[0] == 4 and sung[1] == -1 and sung[2] == (0 if logits[2, 0] > logits[2, 5] else 5)
