"""The codebook layouts themselves, written out by hand for 2 codebooks x 3 frames."""
import torch

from autosong.model import patterns

V = 10  # codebook size: EMPTY is id 10 of each block, block c starts at c * 11
E = V


def codes():
    return torch.tensor([[[1, 2, 3], [4, 5, 6]]])  # [B=1, C=2, T=3]: c0 = 1 2 3, c1 = 4 5 6


def test_flatten_layout():
    p = patterns.get("flatten", 2, V)
    b = p.build(codes(), torch.tensor([3]), torch.tensor([7]))
    assert b.targets[0, :, 0].tolist() == [1, 4, 2, 5, 3, 6]          # frame-major
    assert b.inputs[0, :, 0].tolist() == [11 + E, 1, 11 + 4, 2, 11 + 5, 3]  # previous token, its block
    assert b.codebook.tolist() == [0, 1, 0, 1, 0, 1]
    assert b.positions[0].tolist() == [7, 7, 8, 8, 9, 9]               # absolute frames
    assert p.steps(3) == 6 and p.slots(3, 3) == [(1, 1)]
    assert torch.equal(p.to_frames(b.targets, 3), codes())


def test_delay_layout():
    p = patterns.get("delay", 2, V)
    b = p.build(codes(), torch.tensor([3]), torch.tensor([0]))
    assert b.targets[0].tolist() == [[1, E], [2, 4], [3, 5], [E, 6]]  # c1 one step late
    assert b.valid[0].tolist() == [[True, False], [True, True], [True, True], [False, True]]
    assert b.inputs[0].tolist() == [[E, 11 + E], [1, 11 + E], [2, 11 + 4], [3, 11 + 5]]
    assert p.steps(3) == 4 and p.slots(0, 3) == [(0, 0), None] and p.slots(3, 3) == [None, (1, 2)]
    assert torch.equal(p.to_frames(b.targets, 3), codes())


def test_sampler_inputs_match_the_training_layout():
    """What the sampler feeds at step s is exactly the training batch's input at step s."""
    for name in patterns.PATTERNS:
        p = patterns.get(name, 2, V)
        b = p.build(codes(), torch.tensor([3]), torch.tensor([0]))
        for s in range(p.steps(3)):
            ids, cb, frame = p.step_inputs(s, codes(), 3)
            assert torch.equal(ids[0, 0], b.inputs[0, s]) and frame.item() == b.positions[0, s].item()
            if name == "flatten":
                assert cb.item() == b.codebook[s].item()


def test_padding_is_invalid():
    for name in patterns.PATTERNS:
        b = patterns.get(name, 2, V).build(codes(), torch.tensor([2]), torch.tensor([0]))
        assert int(b.valid.sum()) == 4  # 2 valid frames x 2 codebooks
