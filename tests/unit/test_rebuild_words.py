"""The rebuild notebook's verdict reads as sentences: a capital first, a full stop last, the
counts with their plurals, and a run whose generator fell behind named."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lootlab.report.rebuild import rebuild_verdict


class _Run:
    def __init__(self, source: str, swaps: int, errors: int, valid: bool = True):
        self._summary = {"source": source, "swaps": swaps, "errors": errors, "timeouts": 0,
                         "valid": valid}

    def summary(self) -> dict:
        return self._summary


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 3), st.booleans()),
                min_size=1, max_size=3))
def test_every_verdict_is_whole_sentences(specs):
    runs = [_Run(f"src{i}", swaps, errors, valid) for i, (swaps, errors, valid)
            in enumerate(specs)]
    text = rebuild_verdict(runs)
    assert text[0].isupper()
    assert text.endswith(".")
    swaps = sum(s for s, _, _ in specs)
    assert f"{swaps} swap{'' if swaps == 1 else 's'}" in text
    for i, (_, _, valid) in enumerate(specs):
        assert (f"src{i}" in text) == (not valid)


@pytest.mark.parametrize("errors, said", [(0, "Zero reader errors"), (1, "Readers saw 1 error "),
                                          (2, "Readers saw 2 errors")])
def test_errors_are_counted_in_words(errors, said):
    assert rebuild_verdict([_Run("local", 3, errors)]).startswith(said)
