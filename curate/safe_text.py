"""Text taken from the data (file names, labels, decoder messages) made safe for where it goes.

- files: a name that is not valid UTF-8 reaches Python with its bad bytes as lone surrogates
  (os.fsdecode); UTF-8 output cannot hold those, so they are written as `\\xNN`.
- terminals: control characters (an ESC sequence in a file name) are shown as `\\xNN`, not sent.
- spreadsheets: a text cell starting with = + - @ (or a tab / carriage return) is read as a
  formula by Excel, LibreOffice and Sheets; it is written with a leading apostrophe, as
  OWASP's CSV-injection advice says. Cells already starting with an apostrophe get one more,
  so `unspreadsheet` restores every value exactly. Plain numbers (-90, +1.5) are left alone.
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_ESCAPED_BYTE = re.compile(r"\\x([89a-f][0-9a-f])")


def printable(text: str) -> str:
    """Lone surrogates (undecodable bytes of a file name) as `\\xNN`; anything else unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate not from a file name: escape it as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def from_printable(text: str) -> str:
    """The file-system name `printable` showed as `\\xNN` (for a row flagged name-not-utf8)."""
    return _ESCAPED_BYTE.sub(lambda m: chr(0xDC00 + int(m.group(1), 16)), text)


def terminal(text: str) -> str:
    """Safe to print: printable, and control characters (ESC, BEL, ...) as `\\xNN`."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", printable(text))


def spreadsheet(cell: str) -> str:
    """A text cell a spreadsheet will not run as a formula (see the module docstring)."""
    if cell.startswith("'") or (cell.startswith(FORMULA_PREFIXES) and not _NUMBER.fullmatch(cell)):
        return "'" + cell
    return cell


def unspreadsheet(cell: str) -> str:
    """The value `spreadsheet` was given."""
    return cell[1:] if cell.startswith("'") else cell
