"""The Triton client's error mapping and retry policy, without a server; tests/worker/test_e2e.py runs it against
tritonserver."""

import asyncio
import time

import grpc
import numpy as np
import pytest
from tritonclient.utils import InferenceServerException

from voicereel.errors import ErrorCode
from voicereel.stack import free_port
from voicereel.triton_client import (
    EngineError,
    LineRequest,
    call_with_retry,
    call_with_retry_async,
    classify,
    encode_reference,
    synthesize_lines,
)


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


@pytest.mark.parametrize(
    ("exc", "permanent", "message"),
    [
        (InferenceServerException("INVALID_INPUT: text is empty"), True, "text is empty"),
        (
            InferenceServerException("[StatusCode.INTERNAL] INVALID_INPUT: codes out of range"),
            True,
            "codes out of range",
        ),
        (FakeRpcError(grpc.StatusCode.INTERNAL, "INVALID_INPUT: peak above 1.0"), True, "peak above 1.0"),
        (InferenceServerException("INTERNAL: out of slots", status="StatusCode.INTERNAL"), False, "out of slots"),
        (FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), False, "failed to connect"),
        (FakeRpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), False, "Deadline"),
        (InferenceServerException("Request for unknown model: 'tts' is not found"), False, "unknown model"),
        (ConnectionRefusedError("refused"), False, "refused"),
        (TimeoutError("slow"), False, "slow"),
    ],
)
def test_classify(exc: BaseException, permanent: bool, message: str) -> None:
    error = classify(exc)
    assert error is not None
    assert error.permanent is permanent and error.transient is not permanent
    assert error.code is (ErrorCode.INVALID_INPUT if permanent else ErrorCode.ENGINE_UNAVAILABLE)
    assert message in error.message


def test_our_own_bugs_are_not_engine_errors() -> None:
    assert classify(KeyError("x")) is None


def test_transient_errors_retry_until_success(wsettings) -> None:
    settings = wsettings(triton_retry_max_wait_s=0.05, triton_retry_deadline_s=10)
    calls = []

    def flaky() -> str:
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "connection refused")
        return "ok"

    assert call_with_retry(settings, flaky) == "ok"
    assert len(calls) == 4
    waits = np.diff(calls)
    assert np.all(waits <= 0.05 + 0.05)  # capped (full jitter: anything from 0 to the cap)


def test_permanent_errors_fail_at_once(wsettings) -> None:
    calls = []

    def invalid() -> None:
        calls.append(1)
        raise InferenceServerException("INVALID_INPUT: unknown request parameters ['x']")

    with pytest.raises(EngineError) as info:
        call_with_retry(wsettings(), invalid)
    assert info.value.permanent and len(calls) == 1


def test_retries_stop_at_the_deadline(wsettings) -> None:
    settings = wsettings(triton_retry_max_wait_s=0.05, triton_retry_deadline_s=0.4)

    async def down() -> None:
        raise FakeRpcError(grpc.StatusCode.UNAVAILABLE, "down")

    start = time.monotonic()
    with pytest.raises(EngineError) as info:
        asyncio.run(call_with_retry_async(settings, down))
    assert info.value.code is ErrorCode.ENGINE_UNAVAILABLE
    assert 0.3 < time.monotonic() - start < 2.0


def test_no_server_is_transient_and_bounded(wsettings) -> None:
    settings = wsettings(
        triton_grpc_url=f"127.0.0.1:{free_port()}",
        triton_retry_deadline_s=1.0,
        triton_retry_max_wait_s=0.2,
        triton_timeout_s=2.0,
    )
    start = time.monotonic()
    with pytest.raises(EngineError) as info:
        encode_reference(settings, np.zeros(4410, dtype=np.float32))
    assert info.value.transient
    with pytest.raises(EngineError) as info:
        synthesize_lines(settings, [LineRequest(request_id="r", text="hello")])
    assert info.value.transient
    assert time.monotonic() - start < 15
