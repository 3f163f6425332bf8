import pytest
from pydantic import ValidationError

from voicereel.settings import Settings


def test_worker_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.triton_retry_deadline_s == 600.0 and s.triton_retry_max_wait_s == 10.0
    assert s.worker_heartbeat_s == 5.0 and s.job_max_attempts == 3
    assert (s.reconcile_interval_s, s.reconcile_grace_s, s.sweep_interval_s) == (30, 30.0, 60)
    assert (s.dashboard_host, s.dashboard_port, s.dashboard_username) == ("127.0.0.1", 9181, "admin")
    monkeypatch.setenv("VR_WORKER_HEARTBEAT_S", "0.5")
    monkeypatch.setenv("VR_JOB_MAX_ATTEMPTS", "5")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.worker_heartbeat_s == 0.5 and s.job_max_attempts == 5


@pytest.mark.parametrize(
    ("name", "value"),
    [("triton_retry_deadline_s", 0), ("worker_heartbeat_s", -1), ("job_max_attempts", 0), ("dashboard_port", 70000)],
)
def test_worker_settings_reject_nonsense(name: str, value: float) -> None:
    with pytest.raises(ValidationError):
        Settings(_env_file=None, **{name: value})  # type: ignore[arg-type]
