"""Text from outside made printable and bounded (`text.clean`, `text.bounded`), and probe
results that clean theirs when they are made."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dnsfailover.results import Outcome, ProbeResult
from dnsfailover.text import LIMIT, bounded, clean


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("directory, nonce ok", "directory, nonce ok", id="plain_text_is_kept"),
        pytest.param("bad\x00type", "bad\\x00type", id="nul_is_escaped"),
        pytest.param("a\x1b[31mred\x07", "a\\x1b[31mred\\x07", id="terminal_escapes_are_escaped"),
        pytest.param("one\ntwo\r\tthree", "one\\x0atwo\\x0d\\x09three", id="one_line"),
        pytest.param("évite 中文 ✓ 😀", "évite 中文 ✓ 😀", id="printable_unicode_is_kept"),
        pytest.param("abc\u202edef\u200b", "abc\\u202edef\\u200b", id="bidi_and_zero_width"),
        pytest.param("\udcff", "\\udcff", id="a_lone_surrogate_is_escaped"),
        pytest.param("\U000e0001", "\\U000e0001", id="astral_format_character"),
        pytest.param("", "", id="empty"),
    ],
)
def test_clean(text: str, expected: str) -> None:
    assert clean(text) == expected


def test_a_huge_string_is_capped_and_summarised() -> None:
    cleaned = clean("CN=" + "x" * 2_500_000)
    assert len(cleaned) <= LIMIT
    assert cleaned.startswith("CN=xxx")
    assert cleaned.endswith("… (2,500,003 characters, truncated)")


def test_escapes_that_would_overflow_are_summarised_too() -> None:
    cleaned = clean("\x00" * 200)  # 200 characters, 800 once escaped
    assert len(cleaned) <= LIMIT and cleaned.endswith("(200 characters, truncated)")
    assert "\\x00" in cleaned and "\x00" not in cleaned


def test_an_escape_is_never_cut_in_half() -> None:
    cleaned = clean("ab" + "\x00" * 400, 80)
    assert cleaned.split("…")[0].removeprefix("ab").replace("\\x00", "") == ""


@given(st.text(max_size=1000), st.integers(60, 400))
def test_any_text_comes_out_printable_bounded_and_stable(text: str, limit: int) -> None:
    cleaned = clean(text, limit)
    assert cleaned.isprintable() and len(cleaned) <= limit
    assert clean(cleaned, limit) == cleaned
    cleaned.encode("utf-8")  # no lone surrogate left


def test_bounded_cleans_strings_and_cuts_collections() -> None:
    value = {"problem": "x\x00", "keys": [f"k{i}" for i in range(50)], "n": 3, "none": None}
    out = bounded(value)
    assert out["problem"] == "x\\x00" and out["n"] == 3 and out["none"] is None
    assert len(out["keys"]) == 20 and out["keys"][-1] == "… 31 more, left out"
    many = bounded({f"k{i}": i for i in range(100)})
    assert len(many) == 20 and many["…"] == "81 more entries, left out"
    assert bounded(out) == out and bounded(many) == many  # idempotent


def test_a_result_made_again_keeps_its_summaries() -> None:
    result = ProbeResult("acme", Outcome.HEALTHY, "ok", 0.0, 0.0, {"keys": list(range(50))})
    again = replace(result, outcome=Outcome.UNHEALTHY)  # as one-shot commands do
    assert again.details == result.details and result.details["keys"][-1] == "… 31 more, left out"


def test_a_probe_result_cleans_what_it_carries() -> None:
    result = ProbeResult(
        "acme",
        Outcome.UNHEALTHY,
        "directory: unexpected status 400 bad\x00" + "y" * 300_000,
        0.1,
        0.0,
        {"problem": "bad\x00", "keys": ["a"] * 100},
        ("warn\x1b" * 1000,),
    )
    assert result.reason.isprintable() and len(result.reason) <= LIMIT
    assert "bad\\x00" in result.reason
    assert result.details["problem"] == "bad\\x00" and len(result.details["keys"]) == 20
    assert all(w.isprintable() and len(w) <= LIMIT for w in result.warnings)
    assert result.as_dict()["reason"] == result.reason


def test_a_crashed_probe_is_an_error_result_naming_the_exception() -> None:
    result = ProbeResult.crashed("ocsp", KeyError("x\x00"), 12.0, 0.5)
    assert result.outcome is Outcome.ERROR and result.observed_at == 12.0
    assert result.reason == "probe crashed: KeyError: 'x\\x00'"
    assert ProbeResult.crashed("ocsp", RuntimeError(), 0.0).reason == "probe crashed: RuntimeError"
