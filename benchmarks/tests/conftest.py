"""Fixtures of the benchmark scripts' tests: each script imported as a module."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1]


def _script(name: str) -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def accuracy() -> Iterator[ModuleType]:
    """``benchmarks/accuracy.py``."""
    yield from _script("accuracy")


@pytest.fixture(scope="module")
def speed() -> Iterator[ModuleType]:
    """``benchmarks/speed.py``."""
    yield from _script("speed")
