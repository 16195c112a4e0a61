"""Line times from cross-attention (model/line_times.py): a monotonic path over (frame, line)."""
import numpy as np
import pytest

from autosong.model.line_times import AlignmentHeads, line_states, line_times, sung_lines


def block_map(spans, L, T, noise=0.0, seed=0):
    """A [T, L] map that reads slots a..b-1 during frames s..e-1 for each (s, e, a, b)."""
    rng = np.random.default_rng(seed)
    amap = np.full((T, L), 1e-3) + noise * rng.random((T, L))
    amap[:, 0] += 0.5  # the genre slot: read all along, and left out
    for s, e, a, b in spans:
        amap[s:e, a:b] += 1.0
    return amap / amap.sum(1, keepdims=True)


def test_the_path_finds_each_line_start_through_noise_and_an_intro():
    slots = [3, 10, 20]  # slots 1-2: a tag and a line break before the first line
    amap = block_map([(0, 12, 1, 3), (12, 40, 3, 10), (40, 45, 10, 20), (45, 80, 20, 30)], L=30, T=80, noise=0.3)
    found = line_times(amap, slots, frame_rate=10.0)
    assert found.starts == [1.2, 4.0, 4.5]
    assert found.skipped == [] and found.repeated == []
    assert line_states(np.array(slots), 30).tolist()[:4] == [-1, 0, 0, 1]


def test_an_opening_is_timed_up_to_the_lines_that_start_in_it():
    slots = [3, 10, 20]
    amap = block_map([(0, 12, 1, 3), (12, 40, 3, 10), (40, 45, 10, 20), (45, 80, 20, 30)], L=30, T=80, noise=0.3)
    opening = amap[:35]  # the first 3.5 s: lines 1 and 2 start in it, line 3 at 4.5 s does not
    assert line_times(opening, slots, 10.0, opening=True).starts == [1.2]
    assert line_times(amap[:42], slots, 10.0, opening=True).starts == [1.2, 4.0]
    cut_short = line_times(amap[:13], slots, 10.0, opening=True)  # line 1 begun 0.1 s before the opening ends
    assert cut_short.starts == [1.2] and cut_short.skipped == []
    squeezed = line_times(opening, slots, 10.0).starts  # read as a whole song, every line must fit in it
    assert len(squeezed) == 3 and squeezed[-1] < 3.5


def test_offsets_take_the_heads_lateness_off_the_starts_in_order_and_never_before_zero():
    slots = [3, 10, 20]
    amap = block_map([(0, 12, 1, 3), (12, 40, 3, 10), (40, 45, 10, 20), (45, 80, 20, 30)], L=30, T=80)
    assert line_times(amap, slots, 10.0, offsets=(0.5, -0.25)).starts == pytest.approx([0.7, 4.25, 4.75])
    assert line_times(amap, slots, 10.0, offsets=(2.0, 3.0)).starts == pytest.approx([0.0, 1.0, 1.5])
    assert line_times(amap, slots, 10.0, offsets=(0.0, -0.6)).starts == pytest.approx([1.2, 4.6, 5.1])
    found = line_times(amap, slots, 10.0, offsets=(-4.0, 0.0)).starts  # a first line pushed past the next
    assert found == sorted(found) and found[0] == pytest.approx(5.2)


def test_alignment_heads_keep_their_offsets_and_older_files_read_none(tmp_path):
    AlignmentHeads([(1, 0), (0, 2)], {"songs": 3}, (0.38, -0.12)).save(tmp_path)
    back = AlignmentHeads.load(tmp_path)
    assert back.heads == [(1, 0), (0, 2)] and back.offsets == (0.38, -0.12) and back.chosen_on == {"songs": 3}
    (tmp_path / "alignment.json").write_text('{"heads": [[1, 1]], "chosen_on": {}}')
    assert AlignmentHeads.load(tmp_path).offsets == (0.0, 0.0)


def test_a_line_sung_for_less_than_a_note_is_skipped_and_one_read_again_is_repeated():
    slots = [1, 10, 20]
    amap = block_map([(0, 30, 1, 10), (30, 31, 10, 20), (31, 60, 20, 30), (60, 70, 1, 10), (70, 80, 20, 30)],
                     L=30, T=80)
    found = line_times(amap, slots, frame_rate=10.0, note_s=0.2)
    assert found.skipped == [1]  # one frame (0.1 s) on line 1
    assert found.repeated == [0]  # back on line 0 for a second after the path left it
    assert found.starts[0] == 0.0 and found.starts[2] == pytest.approx(3.1)


def test_sung_lines_are_the_lines_with_words_and_their_first_word_slots(tokenizer):
    text = "[verse]\nHello world\n\n[chorus] 我爱你 la\n(instrumental)\n"
    lines, slots = sung_lines(text, tokenizer)
    assert lines == ["Hello world", "我爱你 la", "(instrumental)"]
    ids = tokenizer.encode(text)
    assert [tokenizer.tokens[ids[s]] for s in slots] == ["h", "wo3", "i"]


def test_sung_notes_are_matched_to_the_expected_ones_in_order():
    from autosong.eval.notes import matched_notes

    expected = [60, 62, 64, 65, 67]
    sung = [60, 61.9, 70, 64, 67]  # 65 missed, 70 extra
    assert matched_notes(sung, expected) == [(0, 0), (1, 1), (2, 3), (4, 4)]


def test_the_true_starts_are_the_lines_with_words_a_tag_s_stamp_dropped():
    """lyrics.lrc stamps [verse] at 0.00 and its first line at 0.48 s: the build gives both the
    line's first slot. What `align` times, and heads are chosen and scored on, is the line's own
    stamp; lines past the codes are left out."""
    from types import SimpleNamespace

    from autosong.model.line_times import true_line_starts

    frames = np.array([0.0, 36.0, 196.7, 634.4, 670.4, 900.0], np.float32)  # [verse], 3 lines, [chorus], a line
    slots = np.array([3, 3, 20, 48, 48, 60])
    song = SimpleNamespace(line_timing=lambda: (frames, slots), codes=np.zeros((2, 800)))
    model = SimpleNamespace(cfg=SimpleNamespace(max_frames=27000))
    got_frames, got_slots = true_line_starts(model, song)
    assert got_slots.tolist() == [3, 20, 48] and np.allclose(got_frames, [36.0, 196.7, 670.4])


def test_heads_chosen_on_the_tags_stamps_too_are_known_for_eval_to_choose_again():
    from autosong.model.line_times import TRUTH

    before = AlignmentHeads([(0, 0)], {"songs": 32, "lines": 157, "median_s": 0.08})  # a 2026-12-05 file
    now = AlignmentHeads([(0, 0)], {"songs": 32, "lines": 88, "median_s": 0.086, "truth": TRUTH})
    by_focus = AlignmentHeads([(0, 0)], {"songs": 8, "method": "focus: no timed songs"})
    by_hand = AlignmentHeads([(0, 0), (1, 1)])
    assert before.scored_on_stamps
    assert not now.scored_on_stamps and not by_focus.scored_on_stamps and not by_hand.scored_on_stamps


def test_the_fewest_heads_within_noise_of_the_best_are_chosen():
    from autosong.model.line_times import fewest_within_noise

    rng = np.random.default_rng(0)
    base = [rng.uniform(0.0, 0.3, 4) for _ in range(30)]  # 30 songs' line errors: the median's noise ~0.015 s
    worse = lambda by: [errors + by for errors in base]  # noqa: E731
    assert fewest_within_noise([worse(0.005), base, worse(0.001)]) == 1  # within noise of the best: one head
    assert fewest_within_noise([worse(0.3), base, worse(0.001)]) == 2  # the top head alone far worse: two
    assert fewest_within_noise([worse(0.3), worse(0.2), base]) == 3
    assert fewest_within_noise([[np.zeros(0)] * 3] * 2) == 1  # no line timed at all: one head, no error
