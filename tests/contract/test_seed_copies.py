"""The seed documents kept in tests/seeds (for clones without ../shared) are the shared ones, unchanged."""

from __future__ import annotations

import pytest
from support import ROOT, SHARED_SEEDS


def test_seed_copies_match_the_shared_seeds() -> None:
    copies = sorted((ROOT / "tests" / "seeds").glob("*.txt"))
    assert len(copies) == 5
    if not SHARED_SEEDS.is_dir():
        pytest.skip(f"SEEDS NOT COMPARED: {SHARED_SEEDS} is not beside this checkout; the tests use the copies")
    for copy in copies:
        assert copy.read_bytes() == (SHARED_SEEDS / copy.name).read_bytes(), copy.name
