"""The auxiliary losses: codebook 0's CE some frames ahead (model.future_frames), and of its next
note (model.note_weight)."""
import math

import torch

from autosong.model.transformer import FuturePrediction
from autosong.train.losses import future_ce
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


def test_the_note_loss_counts_any_code_of_the_right_note_as_right():
    """model.note_weight: codebook 0's probabilities pooled by the note each code sounds; the other
    codebooks' predictions are not scored."""
    from autosong.train.losses import note_ce

    model = tiny(pattern="delay", note_weight=1.0).eval()
    model.code_note.copy_(torch.arange(1024) % 4)  # four notes, the codes taking turns
    codes, lengths, off, ids, mask = batch(T=6)
    logits, pb = model(codes, lengths, off, ids, mask)
    spread = torch.full_like(logits, -30.0)
    first = model.pattern.target_codebooks(pb.codebook, *logits.shape[:2]).expand_as(pb.targets) == 0
    right = pb.targets % 4  # a note's codes: right, right + 4, right + 8, ...
    for k in range(4):  # a quarter on each of four codes of the right note: CE log 4 by code, 0 by note
        spread.scatter_(-1, ((right + 4 * k + 4 * 17) % 1024)[..., None], 0.0)
    loss = note_ce(model, spread, pb)
    assert loss.item() < 1e-4 and first.any()
    wrong = spread.roll(1, dims=-1)  # every code one up: the next note's codes
    assert note_ce(model, wrong, pb).item() > 20  # the right note holds next to nothing
