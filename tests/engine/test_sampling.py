"""Sampling: upstream's distribution, exact draws from it, and random streams that ignore the batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fish_speech.models.text2semantic.inference import logits_to_probs

from voicereel.engine.sampling import SamplingRows, index_hash, mix32, probabilities, row_keys, sample, uniform_noise


def _rows(batch: int, temperature: float, top_p: float, penalty: float, seed: int = 0) -> SamplingRows:
    return SamplingRows(
        torch.full((batch,), temperature),
        torch.full((batch,), top_p),
        torch.full((batch,), penalty),
        torch.arange(batch, dtype=torch.long) + seed,
    )


def _mix32_reference(value: int) -> int:
    mask = 0xFFFFFFFF
    value &= mask
    value ^= value >> 16
    value = (value * 0x7FEB352D) & mask
    value ^= value >> 15
    value = (value * 0x846CA68B) & mask
    return value ^ (value >> 16)


def test_mix32_is_exact_uint32_arithmetic_without_int64_overflow() -> None:
    values = [0, 1, 2**31 - 1, 2**31, 2**32 - 1, 123456789, 0xDEADBEEF, *range(1000, 1100)]
    got = mix32(torch.tensor(values, dtype=torch.long)).tolist()
    assert got == [_mix32_reference(v) for v in values]


def test_uniform_noise_is_in_open_interval_and_uniform() -> None:
    keys = row_keys(torch.tensor([7, 8]), torch.tensor([0, 0]), stream=0)
    noise = uniform_noise(keys, index_hash(50_000, torch.device("cpu")))
    assert float(noise.min()) > 0 and float(noise.max()) < 1
    histogram = torch.histc(noise[0], bins=10, min=0, max=1)
    assert float((histogram / 5000 - 1).abs().max()) < 0.06
    assert not torch.equal(noise[0], noise[1])  # another seed, another stream


@pytest.mark.parametrize(("temperature", "top_p", "penalty"), [(0.8, 0.8, 1.1), (1.3, 0.95, 1.5), (0.3, 1.0, 0.8)])
def test_probabilities_equal_upstream_logits_to_probs(temperature: float, top_p: float, penalty: float) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 300, generator=generator) * 3
    window = torch.randint(0, 300, (3, 16), generator=generator)
    probs, _ = probabilities(logits, _rows(3, temperature, top_p, penalty), window, torch.ones(3, 16, dtype=torch.bool))
    for row in range(3):
        expected = logits_to_probs(
            logits[row].clone(),
            torch.tensor(temperature),
            torch.tensor(top_p),
            torch.tensor(penalty),
            previous_tokens=window[row],
        )
        torch.testing.assert_close(probs[row], expected, atol=1e-6, rtol=1e-5)


def test_window_entries_not_yet_produced_are_not_penalised() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5, 0.25]])
    window = torch.tensor([[0, 1, 0, 0]])
    valid = torch.tensor([[False, True, False, False]])  # only token 1 was really produced
    _, penalized = probabilities(logits, _rows(1, 1.0, 1.0, 2.0), window, valid)
    assert penalized.tolist() == [[2.0, -2.0, 0.5, 0.25]]


def test_draws_follow_the_distribution() -> None:
    draws_count = 6000  # one request's draws at 6000 frame counters, computed as one batch of rows
    logits = torch.tensor([[1.0, 0.0, -1.0, 2.0, 0.5]]).expand(draws_count, 5)
    rows = SamplingRows(
        torch.ones(draws_count), torch.ones(draws_count), torch.ones(draws_count), torch.full((draws_count,), 42)
    )
    window, valid = torch.zeros(draws_count, 1, dtype=torch.long), torch.zeros(draws_count, 1, dtype=torch.bool)
    table = index_hash(5, torch.device("cpu"))
    draws = sample(logits, rows, window, valid, torch.arange(draws_count), 0, table)
    counts = np.bincount(draws.numpy(), minlength=5)
    expected = torch.softmax(logits[0], -1).numpy() * draws_count
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, (counts, expected)  # 4 degrees of freedom: p < 0.0004 to fail by chance


def test_greedy_and_top_p_edges() -> None:
    logits = torch.tensor([[0.1, 3.0, 2.9, -5.0]] * 2)
    window, valid = torch.zeros(2, 1, dtype=torch.long), torch.zeros(2, 1, dtype=torch.bool)
    table = index_hash(4, torch.device("cpu"))
    greedy = sample(logits, _rows(2, 0.0, 0.5, 1.0), window, valid, torch.tensor([0, 9]), 0, table)
    assert greedy.tolist() == [1, 1]
    tiny_top_p = _rows(2, 1.5, 1e-4, 1.0)  # only the best token survives top-p
    for counter in range(50):
        drawn = sample(logits, tiny_top_p, window, valid, torch.tensor([counter, counter + 1]), 0, table)
        assert drawn.tolist() == [1, 1]


def test_a_row_draws_the_same_alone_or_in_any_batch() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 64, generator=generator)
    rows = SamplingRows(
        torch.tensor([0.7, 1.0, 0.0, 1.2, 0.9, 0.5]),
        torch.tensor([0.9, 0.8, 1.0, 0.7, 1.0, 0.95]),
        torch.tensor([1.1, 1.0, 1.3, 1.0, 1.2, 1.05]),
        torch.tensor([11, 22, 33, 44, 55, 66]),
    )
    window = torch.randint(0, 64, (6, 16), generator=generator)
    valid = torch.rand(6, 16, generator=generator) > 0.3
    counter = torch.tensor([0, 5, 9, 3, 3, 100])
    table = index_hash(64, torch.device("cpu"))
    together = sample(logits, rows, window, valid, counter, 2, table)
    for row in range(6):
        alone = sample(
            logits[row : row + 1],
            rows.narrow(row, row + 1),
            window[row : row + 1],
            valid[row : row + 1],
            counter[row : row + 1],
            2,
            table,
        )
        assert int(alone) == int(together[row])
    # the stream and the counter both change the draw (else codebooks of one frame would share noise)
    keys = {tuple(row_keys(rows.seed, counter, stream).tolist()) for stream in range(4)}
    assert len(keys) == 4
