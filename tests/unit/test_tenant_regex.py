"""Tenant regexes on RE2: linear time, bounded memory and subjects, refusals that say why."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from control.policy import regex


def test_the_catastrophic_pattern_runs_in_linear_time() -> None:
    started = time.perf_counter()
    assert not regex.search("^(a+)+$", "a" * 48 + "!")       # hung the API under Python's re
    assert not regex.search("^(a+)+$", "a" * (regex.MAX_SUBJECT_LENGTH - 1) + "!")
    assert regex.search("^(a+)+$", "a" * regex.MAX_SUBJECT_LENGTH)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("pattern", "why"), [
    (r"(a)\1", "backreferences are not supported"),
    (r"(?P<x>a)\k<x>", "backreferences are not supported"),
    ("a(?=b)", "lookahead is not supported"),
    ("a(?!b)", "lookahead is not supported"),
    ("(?<=a)b", "lookbehind is not supported"),
    ("(?<!a)b", "lookbehind is not supported"),
    (r"\pL{1,100}", f"more than the {regex.MEMORY_LIMIT // 1024} KiB a pattern may use"),
    ("([", "missing ]"),
    ("a{1001}", "invalid repetition size"),
])
def test_patterns_re2_will_not_run_are_refused_saying_why(pattern: str, why: str) -> None:
    with pytest.raises(regex.RegexError) as info:
        regex.check(pattern)
    assert str(info.value).startswith("invalid regex (RE2 syntax): ")
    assert why in str(info.value)


def test_pattern_length_is_capped() -> None:
    regex.check("a" * regex.MAX_PATTERN_LENGTH)
    with pytest.raises(regex.RegexError, match=f"longer than {regex.MAX_PATTERN_LENGTH} characters"):
        regex.check("a" * (regex.MAX_PATTERN_LENGTH + 1))


def test_subjects_over_the_cap_never_match() -> None:
    at_cap = "x" * (regex.MAX_SUBJECT_LENGTH - 2) + "id"
    assert regex.searchable(at_cap) and regex.search("id$", at_cap)
    assert not regex.searchable(at_cap + "!") and not regex.search("id", at_cap + "!")


def test_any_string_can_be_searched() -> None:
    assert regex.search("é", "café") and regex.search(r"\p{Greek}", "ωmega")
    assert regex.search("b", "a\ud800b")       # a lone surrogate does not raise


def test_compiled_patterns_are_cached_and_the_cache_is_bounded() -> None:
    assert regex.compiled("^ord_") is regex.compiled("^ord_")
    for i in range(regex.CACHE_SIZE + 10):
        regex.compiled(f"^p{i}$")
    info = regex.compiled.cache_info()
    assert info.maxsize == regex.CACHE_SIZE and info.currsize <= regex.CACHE_SIZE


# Patterns in the part of the syntax both engines read alike: they must agree on every subject.
_atom = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", r"\d", "(a|b)", "(ab)"])
_piece = st.builds(lambda atom, quant: atom + quant, _atom, st.sampled_from(["", "*", "+", "?", "{1,3}"]))
_pattern = st.builds(lambda anchor, pieces, end: anchor + "".join(pieces) + end,
                     st.sampled_from(["", "^"]), st.lists(_piece, min_size=1, max_size=5), st.sampled_from(["", "$"]))


@settings(max_examples=300, deadline=None)
@given(pattern=_pattern, subject=st.text(alphabet="ab1-", max_size=20))
def test_re2_agrees_with_python_re_on_their_common_syntax(pattern: str, subject: str) -> None:
    assert regex.search(pattern, subject) == (re.search(pattern, subject) is not None)
