"""Inductor's compile workers started ahead of the first compile (voicereel.engine.compile_workers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch._inductor.config as inductor_config
from torch._inductor import async_compile

from voicereel.engine.compile_workers import compile_workers_ready, start_compile_workers


@pytest.fixture
def no_pool() -> Iterator[None]:
    async_compile.shutdown_compile_workers()
    saved = inductor_config.compile_threads
    yield
    async_compile.shutdown_compile_workers()
    inductor_config.compile_threads = saved


def test_the_pool_starts_and_answers_before_anything_compiles(no_pool: None) -> None:
    inductor_config.compile_threads = 2
    assert not compile_workers_ready()
    assert start_compile_workers()
    async_compile.AsyncCompile.wait_pool_ready(timeout=120)
    assert compile_workers_ready()


def test_one_compile_thread_starts_no_pool(no_pool: None) -> None:
    inductor_config.compile_threads = 1
    assert not start_compile_workers()
    assert not compile_workers_ready()
