"""The auxiliary future loss (model.future_frames), over codes and over the notes codes sound."""
import math

import torch

from autosong.model.transformer import FuturePrediction
from autosong.train.losses import future_ce
from tests.model.test_transformer import batch, tiny


def prediction(probs, targets, notes=None, valid=None):
    logits = torch.tensor(probs).log()[None, None]  # [1, 1, F, V]
    targets = torch.tensor(targets)[None, None]
    valid = torch.ones_like(targets, dtype=torch.bool) if valid is None else torch.tensor(valid)[None, None]
    return FuturePrediction(logits, targets, valid, None if notes is None else torch.tensor(notes))


def test_over_codes_the_loss_is_the_code_cross_entropy_of_real_frames():
    probs = [[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]]
    assert math.isclose(future_ce(prediction(probs, [3, 0])).item(), -(math.log(0.4) + math.log(0.25)) / 2, rel_tol=1e-5)
    assert math.isclose(future_ce(prediction(probs, [3, 0], valid=[True, False])).item(), -math.log(0.4), rel_tol=1e-5)


def test_over_notes_any_code_of_the_right_note_is_right():
    probs = [[0.3, 0.3, 0.3, 0.1]]  # codes 0-2 sound one note, code 3 another
    notes = [0, 0, 0, 1]
    by_code = future_ce(prediction(probs, [0])).item()
    by_note = future_ce(prediction(probs, [0], notes)).item()
    assert math.isclose(by_code, -math.log(0.3), rel_tol=1e-5) and math.isclose(by_note, -math.log(0.9), rel_tol=1e-5)
    assert math.isclose(future_ce(prediction(probs, [3], notes)).item(), -math.log(0.1), rel_tol=1e-5)
    one_each = [0, 1, 2, 3]  # a code per note: the two losses agree
    assert math.isclose(future_ce(prediction(probs, [1], one_each)).item(), by_code, rel_tol=1e-5)


def test_a_model_that_scores_notes_carries_each_code_s_note_into_its_prediction():
    model = tiny(pattern="delay", future_frames=(4, 8), future_target="notes").eval()
    assert model.code_note.shape == (1024,) and "code_note" in model.state_dict()  # saved with the weights
    model.code_note.copy_(torch.arange(1024) // 64)
    codes, lengths, off, ids, mask = batch(T=12)
    *_, future = model(codes, lengths, off, ids, mask, with_future=True)
    assert future.notes is model.code_note and future.logits.shape[-1] == 1024
    assert future_ce(future).item() < future_ce(FuturePrediction(future.logits, future.targets, future.valid)).item()
    assert getattr(tiny(pattern="delay", future_frames=(4, 8)), "code_note", None) is None  # codes: no table
