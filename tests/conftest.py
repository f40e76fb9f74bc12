"""Fixtures shared by the spec-language tests (test_spec_*, test_layers, test_cli_spec, test_fuzz)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from modelspec.errors import SpecError, SpecIssue
from modelspec.load import loads_spec

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Statistics caches (normalize: auto) go to a temporary folder, for this process and the
    commands it starts: a test writes neither into the user's ~/.cache nor beside shared data."""
    os.environ["MODELSPEC_CACHE"] = str(tmp_path_factory.mktemp("modelspec-cache"))


@pytest.fixture
def fashion_spec() -> Path:
    return REPO / "specs" / "fashion_bn.yaml"


@pytest.fixture
def spec_issues():
    """`spec_issues(text, *overrides)`: the issues loading `text` as bad.yaml raises (it must raise)."""

    def issues(text: str, *overrides: str) -> list[SpecIssue]:
        with pytest.raises(SpecError) as caught:
            loads_spec(text, "bad.yaml", overrides)
        return caught.value.issues

    return issues
