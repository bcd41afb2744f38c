"""collect's redaction held to oslo.config's own ini parser (oslo_config.iniparser.BaseParser):
whatever oslo.config would read as the value of a secret key is gone after redaction, however
the value is quoted, followed or continued; only the parser's own reading counts."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oslo_config import iniparser

from hvcheck.parsers.redact import _NOT_SECRET, _SECRET_KEY, REDACTED, redact_config


class _Values(iniparser.BaseParser):
    """Every assignment as oslo.config's ConfigParser stores it: lines joined by "\\n"."""

    def __init__(self) -> None:
        self.section = ""
        self.values: list[tuple[str, str, str]] = []

    def new_section(self, section: str) -> None:
        self.section = section

    def assignment(self, key: str, value: list[str]) -> None:
        self.values.append((self.section, key, "\n".join(value)))


def _oslo(text: str) -> list[tuple[str, str, str]]:
    p = _Values()
    p.parse(io.StringIO(text, newline=None))  # as oslo opens a file: universal newlines
    return p.values


def _assert_no_secret_survives(text: str) -> None:
    before = _oslo(text)
    after = _oslo(redact_config(text.encode()).data.decode())
    assert [(s, k) for s, k, _ in after] == [(s, k) for s, k, _ in before]
    for (_, key, was), (_, _, now) in zip(before, after):
        if _SECRET_KEY.fullmatch(key) is None:
            assert now == was  # a setting, kept as oslo reads it
        elif not _NOT_SECRET.fullmatch(was.strip()):  # a secret (not "", a boolean, <None>)
            assert REDACTED in now and set(now) <= set("*\n"), (was, now)


@pytest.mark.parametrize(
    "text",
    [
        # oslo.config has no ';' statements or comments after a value: all of it is the secret
        '[a]\npassword = "abc";def123\n',
        '[a]\npassword = "";0000\n',
        '[a]\npassword = "abc" ;comment\n',
        "[a]\nadmin_password = 'x'; y=1\n",
        # an indented line continues the value, quoted or not
        '[a]\npassword = "abc"\n    def123\n',
        "[a]\npassword = 'abc'\n\tdef123\n",
        # ...also a first line that alone would hold no secret
        "[a]\npassword =\n    hunter2\n",
        "[a]\npassword = false\n\thunter2\n",
        "[a]\nauth_token = <None>\n  hunter2\n",
    ],
    ids=repr,
)
def test_what_oslo_reads_as_a_secret_is_gone(text: str) -> None:
    _assert_no_secret_survives(text)


@pytest.mark.parametrize(
    "text",
    [
        '[a]\nPassword = "a"b"c"\n',
        "[a]\npassword = ''\n",
        '[a]\npassword = "abc" \t\r\nvirt_type = kvm\n',
        '[a]\npassword = "ab\'c"\n',
        '[a]\npassword = "abc" # c\n',
        '[a]\npassword = "abc"\x0c\n',
        '[a]\npassword = "abc"\x0cdef\n',
        "[a]\npassword = first\n  second\n\tthird\n\nvirt_type = kvm\n",
    ],
    ids=repr,
)
def test_what_held(text: str) -> None:
    _assert_no_secret_survives(text)


_piece = st.lists(st.sampled_from([*"ab0 \t\"';#=:", "false", "<None>"]), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    key=st.sampled_from(["password", "admin_password", "auth_token", "virt_type"]),
    first=_piece,
    more=st.lists(_piece.map(lambda s: " " + s.strip() if s.strip() else ""), max_size=2),
)
def test_generated_values(key: str, first: str, more: list[str]) -> None:
    text = "\n".join(["[a]", f"{key} = {first}", *[m for m in more if m], "x = 1"]) + "\n"
    try:
        _oslo(text)
    except iniparser.ParseError:
        return  # oslo refuses the file: nova never reads it
    _assert_no_secret_survives(text)
