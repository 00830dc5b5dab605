"""The escaping functions of text.py over arbitrary text (hypothesis): what each target
must never receive raw, and that escaping twice changes nothing more for the terminal."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backdrill.runtime import text

# every control and format character the terminal must not obey
RAW_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
anything = st.text(
    alphabet=st.one_of(st.characters(), st.sampled_from("\x1b\x07\n\r|<>&`*_[]\\'=\u202e\x9b")),
    max_size=60,
)


@given(anything)
def test_terminal_leaves_no_control_character_and_is_idempotent(value: str) -> None:
    shown = text.terminal(value)
    assert not RAW_CONTROL.search(shown)
    assert text.terminal(shown) == shown
    if not RAW_CONTROL.search(value):
        assert shown == value  # ordinary names are shown as they are


@given(anything)
def test_markdown_has_no_unescaped_markup_and_stays_on_one_line(value: str) -> None:
    shown = text.markdown(value)
    assert "\n" not in shown and not RAW_CONTROL.search(shown)
    # every metacharacter is preceded by an odd number of backslashes
    for match in re.finditer(r"(\\*)([`*_\[\]<>&|~])", shown):
        assert len(match.group(1)) % 2 == 1, shown


@given(anything)
def test_webhook_text_has_no_slack_control_character(value: str) -> None:
    shown = text.webhook(value)
    assert not set(shown) & set("<>") and not RAW_CONTROL.search(shown)
    assert re.sub(r"&(amp|lt|gt);", "", shown).count("&") == 0


@pytest.mark.slow
@given(anything)
def test_nagios_text_and_label(value: str) -> None:
    assert "|" not in text.nagios_text(value) and "\n" not in text.nagios_text(value)
    label = text.nagios_label(value)
    inner = label[1:-1]
    assert label[0] == label[-1] == "'" and "=" not in label and "|" not in label
    assert re.fullmatch(r"(?:[^']|'')*", inner), label


@given(st.text(max_size=60))
def test_json_line_keeps_the_values(value: str) -> None:
    line = text.json_line(json.dumps({"message": value}, ensure_ascii=False))
    assert not RAW_CONTROL.search(line)
    assert json.loads(line) == {"message": value}
