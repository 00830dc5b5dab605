"""Escaping of outside text (database, table, file, module names; ids; details) for each
place it is shown. One function per target; every caller of a target uses it:

- a terminal: :func:`terminal` (rich output through ``cli.render.TerminalConsole``, text
  log lines, error lines on stderr, progress bars); :func:`json_line` for JSON log lines;
- Markdown (report.md): :func:`markdown`, the ``finalize`` of the Markdown templates;
- a webhook's ``text`` (Slack mrkdwn, n8n): :func:`webhook`;
- Nagios plugin output: :func:`nagios_text` (before the ``|``), :func:`nagios_label`
  (performance data labels).

HTML is escaped by Jinja's autoescape (report/render.py); Prometheus label values by
prometheus_client itself (``\\``, ``"`` and newline), so neither has a function here.
"""

from __future__ import annotations

import re

#: C0 controls (ESC starts ANSI sequences; BEL, BS, CR rewrite the line), DEL, C1 controls
#: (0x9b is a one-byte CSI on some terminals), and the Unicode line separators and
#: bidirectional overrides that reorder what is displayed ("Trojan Source").
_CONTROL = re.compile(
    r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char in _SHORT:
        return _SHORT[char]
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def terminal(text: str) -> str:
    """``text`` with every control character shown as a Python-style escape (``\\x1b``,
    ``\\n``): nothing reaches the terminal that moves the cursor, recolours, rings, or
    starts a new line. Idempotent (a backslash is left alone)."""
    return _CONTROL.sub(_visible, text)


def json_line(line: str) -> str:
    """A JSON document on one line, with the controls ``json.dumps(ensure_ascii=False)``
    leaves raw (C1, bidirectional overrides, line separators) as ``\\uXXXX`` escapes; they
    can only occur inside strings, so the line stays valid JSON with the same values."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", line)


#: CommonMark backslash-escapes any ASCII punctuation. These are the ones that start
#: markup in the middle of a line: emphasis, code, links and images, raw HTML and
#: entities, GFM tables and strikethrough. A value never starts a line in the templates.
_MARKDOWN = re.compile(r"([\\`*_\[\]<>&|~])")


def markdown(text: object) -> str:
    """Any value as literal Markdown text on one line (table cells included)."""
    return _MARKDOWN.sub(r"\\\1", terminal(str(text)))


_WEBHOOK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


def webhook(text: str) -> str:
    """Text for a webhook message: Slack's three control characters as entities (no
    ``<!channel>`` mention, no ``<url|link>``), controls escaped."""
    return terminal(text).translate(_WEBHOOK)


#: Nagios splits plugin output at the first ``|`` (performance data follows); Checkmk
#: shows a ``|`` in output as the broken bar too.
_NAGIOS_TEXT = str.maketrans({"|": "\u00a6"})
#: Nagios plugin guidelines: a label has no ``=``; it is quoted with ``'``, a quote
#: inside is written twice.
_NAGIOS_LABEL = str.maketrans({"|": "\u00a6", "=": "_", "'": "''"})


def nagios_text(text: str) -> str:
    """Plugin output text (before the performance data): one line, no ``|``."""
    return terminal(text).translate(_NAGIOS_TEXT)


def nagios_label(text: str) -> str:
    """A performance data label, quoted: ``'database it''s'``."""
    return "'" + terminal(text).translate(_NAGIOS_LABEL) + "'"
