import pytest

from voicereel.ids import IdMaker, has_prefix, new_id


def test_ids_are_prefixed_and_sort_by_time() -> None:
    ids = IdMaker()
    a = ids.new("job", now_ms=1_700_000_000_000)
    b = ids.new("job", now_ms=1_700_000_000_001)
    assert a.startswith("job_") and has_prefix(a, "job")
    assert a < b
    assert not has_prefix(a, "spk")


def test_ids_are_unique_within_one_millisecond() -> None:
    maker = IdMaker()
    ids = {maker.new("spk", now_ms=5) for _ in range(2000)}
    assert len(ids) == 2000


def test_ids_made_in_one_millisecond_keep_creation_order() -> None:
    ids = IdMaker()
    made = [ids.new("spk", now_ms=1_800_000_000_000) for _ in range(500)]
    assert made == sorted(made)


def test_clock_stepping_back_does_not_break_order() -> None:
    ids = IdMaker()
    first = ids.new("job", now_ms=1_900_000_000_000)
    assert ids.new("job", now_ms=1_899_999_999_000) > first


def test_process_ids_follow_creation_order() -> None:
    made = [new_id("key") for _ in range(300)]
    assert made == sorted(made)


def test_unknown_prefix_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("xyz")


@pytest.mark.parametrize("value", ["job_", "job_' OR 1=1 --", "job_" + "A" * 26, "spk_" + "0" * 26])
def test_has_prefix_rejects_malformed(value: str) -> None:
    assert not has_prefix(value, "job")
