"""Every public module's docstring examples run, and every public name has an Examples section."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import diffmm

MODULES = [
    "diffmm._validation",
    "diffmm.baselines",
    "diffmm.datasets",
    "diffmm.diffusion",
    "diffmm.estimator",
    "diffmm.losses",
    "diffmm.metrics",
    "diffmm.model_selection",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize(
    "obj",
    [
        diffmm.DiffMMRecommender,
        diffmm.PopularityRecommender,
        diffmm.LightGCNRecommender,
        diffmm.DiffMMRecommender.from_preset,
    ],
    ids=lambda o: o.__qualname__,
)
def test_public_api_has_examples(obj):
    assert "Examples" in inspect.getdoc(obj)
