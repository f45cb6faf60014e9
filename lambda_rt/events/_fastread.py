"""The fast path of validation: one ``pyarrow.json`` read of the whole batch (private).

:func:`fast_parse` joins the values with newlines and reads them with one
``pyarrow.json`` call into rows of the parse schema, aligned with the input.
Lines the read would get wrong or choke on go to the slow path
(:mod:`lambda_rt.events._slowread`) and hold ``{}`` in the read:

- found up front by vectorised byte checks over the joined buffer (numpy):
  not exactly one ``{...}`` object, bad UTF-8, NaN/Infinity tokens, deep
  nesting (where pyarrow's dialect differs from strict JSON), and, when the
  batch has bad lines at all, likely wrong JSON types in known fields (which
  make the whole read fail);
- after a failed read, from pyarrow's error message (the text it could not
  convert, the row it stopped at). After ``_MAX_READS`` reads, or when no
  culprit is left to take out, the whole batch takes the slow path.

The checks only choose the path: a line wrongly sent slow is still judged
right, a line wrongly kept costs one more read. Rules are applied elsewhere
(:mod:`lambda_rt.events.validate`); nothing here rejects a message.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.json as pj

from lambda_rt.events._columns import COLUMNS, IS_INT, PARSE_SCHEMA

__all__ = ["fast_parse"]

_PARSE_OPTIONS = pj.ParseOptions(explicit_schema=PARSE_SCHEMA, unexpected_field_behavior="ignore")
_BLOCK_SIZE = 1 << 20  # measured: 1 MiB blocks beat one big block by ~25%
_USE_THREADS = False  # threads: +15-35% on a quiet 2-core box, slower under contention
_MAX_BRACKETS = 512  # lines with more go slow: orjson stops at depth 1024
_NAN_INF = re.compile(rb"NaN|Inf")  # RapidJSON accepts NaN/Inf/Infinity, JSON does not
_TWO_OBJECTS = re.compile(rb"\}[{ \t\r]")
_CONVERT_ERROR = re.compile(r"couldn't parse:(\S+)")
_ROW_ERROR = re.compile(r" in row (\d+)")
_MAX_READS = 4
_COLON, _QUOTE, _SPACE, _MINUS, _NULL = (ord(c) for c in ':" -n')
_Scan = Callable[[bytearray, np.ndarray], np.ndarray]  # joined buffer -> suspect byte positions


def fast_parse(vals: list[bytes]) -> tuple[pa.Table | None, np.ndarray]:
    """Read ``vals`` (non-empty) with pyarrow: (aligned table or None, slow lines).

    ``None`` means the read gave up and every line is slow.
    """
    n = len(vals)
    data = bytearray(b"\n").join(vals)  # mutable: placeholders are written into it
    lens = np.fromiter(map(len, vals), np.int64, count=n)
    starts = np.zeros(n, np.int64)
    np.cumsum(lens[:-1] + 1, out=starts[1:])
    buf = np.frombuffer(data, np.uint8)
    slow = _prescreen(vals, data, buf, lens, starts)
    # bad messages come together: if some were screened out, look for the rest up front
    scans: list[_Scan] = [_type_suspects, _two_objects]
    if slow.any():
        slow[_lines_of(starts, scans.pop(0)(data, buf))] = True
    block = max(_BLOCK_SIZE, 2 * int(lens.max()) + 2)
    blanked = np.zeros(n, bool)
    for _ in range(_MAX_READS):
        if slow.all():
            break
        table, error = _read(vals, data, lens, starts, slow, slow & ~blanked, block)
        blanked |= slow
        if table is not None:
            return table, np.flatnonzero(slow)
        lines = _culprits(error, data, buf, starts, slow, scans, block >= len(data))
        if not len(lines):
            break  # no progress: give the whole batch to the slow path
        slow[lines] = True
    return None, np.arange(n)


def _prescreen(
    vals: list[bytes], data: bytearray, buf: np.ndarray, lens: np.ndarray, starts: np.ndarray
) -> np.ndarray:
    """Lines pyarrow would read differently from strict JSON, or not as one row."""
    slow = lens < 2
    ok = np.flatnonzero(~slow)
    slow[ok] = (buf[starts[ok]] != ord("{")) | (buf[starts[ok] + lens[ok] - 1] != ord("}"))
    if not data.isascii():
        lines = np.unique(_lines_of(starts, np.flatnonzero(buf >= 0x80)))
        if len(lines) < 64 or not _is_utf8(data):  # a newline cannot mend or break UTF-8
            slow[[i for i in lines.tolist() if not _is_utf8(vals[i])]] = True
    if b"N" in data or b"I" in data:
        hits = np.fromiter((m.start() for m in _NAN_INF.finditer(data)), np.int64)
        slow[_lines_of(starts, hits)] = True
    # each line holds at least one bracket: only lines this long can nest too deep
    for i in np.flatnonzero(lens > _MAX_BRACKETS).tolist():
        if vals[i].count(b"{") + vals[i].count(b"[") > _MAX_BRACKETS:
            slow[i] = True
    return slow


def _is_utf8(raw: bytes | bytearray) -> bool:
    """True if ``raw`` decodes (a newline cannot complete or break a sequence)."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _read(
    vals: list[bytes],
    data: bytearray,
    lens: np.ndarray,
    starts: np.ndarray,
    slow: np.ndarray,
    new: np.ndarray,
    block: int,
) -> tuple[pa.Table | None, str]:
    """One pyarrow.json read with ``{}`` for slow lines: (aligned table, "") or (None, error).

    The ``new`` slow lines get their placeholder written into ``data`` (``{}``
    then blanks, the same length), so the buffer is never joined twice; only a
    line too short to hold ``{}`` needs a re-join (pyarrow skips blank lines).
    """
    source = data
    if int(lens[slow].min(initial=2)) < 2:
        joined = list(vals)
        for i in np.flatnonzero(slow).tolist():
            joined[i] = b"{}"
        source = bytearray(b"\n").join(joined)
    else:
        for i in np.flatnonzero(new).tolist():
            start, length = int(starts[i]), int(lens[i])
            data[start : start + length] = b"{}" + b" " * (length - 2)
    options = pj.ReadOptions(block_size=block, use_threads=_USE_THREADS)
    try:
        reader = pa.BufferReader(pa.py_buffer(source))
        table = pj.read_json(reader, read_options=options, parse_options=_PARSE_OPTIONS)
    except (pa.ArrowException, ValueError) as exc:
        return None, str(exc)
    if table.num_rows != len(vals):
        return None, f"{table.num_rows} rows for {len(vals)} values"
    return table, ""


def _culprits(
    error: str,
    data: bytearray,
    buf: np.ndarray,
    starts: np.ndarray,
    slow: np.ndarray,
    scans: list[_Scan],
    one_block: bool,
) -> np.ndarray:
    """Lines not yet slow to take out after a failed read (empty: no idea left).

    The type scan if it has not run (wrong types come in numbers), then the
    error message: the text pyarrow could not convert to int64, or the row of
    a parse error (exact with one block as long as each line is one row; a
    wrong guess only costs a retry); then the scans not run yet.
    """
    if scans and scans[0] is _type_suspects:
        lines = _lines_of(starts, scans.pop(0)(data, buf))
        if (~slow[lines]).any():
            return lines
    if (token := _CONVERT_ERROR.search(error)) is not None:
        hits = [m.start() for m in re.finditer(re.escape(token[1].encode()), data)]
        lines = _lines_of(starts, np.array(hits, np.int64))
        if (~slow[lines]).any():
            return lines
    row = _ROW_ERROR.search(error) if one_block else None
    if row is not None and int(row[1]) < len(slow) and not slow[int(row[1])]:
        return np.array([int(row[1])], np.int64)
    while scans:
        lines = _lines_of(starts, scans.pop(0)(data, buf))
        if (~slow[lines]).any():
            return lines
    return np.zeros(0, np.int64)


def _type_suspects(data: bytearray, buf: np.ndarray) -> np.ndarray:
    """Byte positions of values that likely have the wrong JSON type for their key.

    A known key whose value starts with the wrong type, or a decimal point in a
    number after a known int key. Keys are ``"name":`` (one blank may follow
    the colon), told apart by the 8 bytes that end at their closing quote, read
    as one uint64 per colon (see :func:`_key_table`). Over-inclusive is fine:
    suspects only take the slow path.
    """
    size = len(buf)
    if size < 8:
        return np.zeros(0, np.int64)
    colon = np.flatnonzero(buf == _COLON)
    if len(colon) and colon[-1] == size - 1:  # no value after it: the read will say why
        colon = colon[:-1]
    colon = colon[buf[colon - 1] == _QUOTE]  # colon 0 reads buf[-1]: never a key anyway
    close = colon - 1  # the key's closing quote
    words = np.ndarray((size - 7,), "<u8", data, 0, (1,))[np.maximum(close - 7, 0)]
    for j in np.flatnonzero(close < 7).tolist():  # at most the first key of the batch
        words[j] = int.from_bytes((bytes(7) + data[:8])[close[j] : close[j] + 8], "little")
    slot = (words * _KEY_MULT) >> _KEY_SHIFT
    kind = np.where(np.take(_KEY_WORDS, slot) == words, np.take(_KEY_KINDS, slot), np.uint8(0))
    top = words >> np.uint64(32)
    for short_word, short_kind in _SHORT_WORDS:
        kind[top == short_word] = short_kind
    value = colon + 1
    first = buf[value]
    blank = np.flatnonzero(first == _SPACE)
    if len(blank):  # '"key": value' (the separators of json.dumps)
        blank = blank[value[blank] + 1 < size]
        value[blank] += 1
        first[blank] = buf[value[blank]]
    number = ((first - ord("0")) < 10) | (first == _MINUS)
    is_int = kind == 1
    ok = (kind == 0) | (first == _NULL) | (is_int & number) | ((kind == 2) & (first == _QUOTE))
    found = close[~ok]
    dots = _finds(data, b".")
    if len(dots):
        dots = dots[dots + 1 < size]
        dots = dots[(buf[dots + 1] - ord("0")) < 10]
        k = np.searchsorted(colon, dots) - 1  # the key before each decimal point
        dots, k = dots[k >= 0], k[k >= 0]
        found = np.concatenate([found, dots[is_int[k] & number[k] & (dots - value[k] < 24)]])
    return found


def _two_objects(data: bytearray, buf: np.ndarray) -> np.ndarray:
    """Byte positions of ``}`` followed by ``{`` or blank: maybe two objects on one line."""
    hits = [m.start() for m in _TWO_OBJECTS.finditer(data)]
    return np.array(hits, np.int64)


def _finds(data: bytearray, needle: bytes) -> np.ndarray:
    """Every position of ``needle`` (fast when rare: ``find`` is a memchr)."""
    out = []
    at = data.find(needle)
    while at >= 0:
        out.append(at)
        at = data.find(needle, at + 1)
    return np.array(out, np.int64)


def _key_table() -> tuple[np.uint64, np.ndarray, np.ndarray]:
    """A perfect hash of known keys' 8-byte words: (multiplier, words, kinds) by slot.

    The word of a key is the 8 bytes ending at its closing quote: the last 7
    chars and the quote for long keys, ``,"items"``, ``{"items"`` or
    `` "items"`` for 5-char ones. Kind 1: an int column, 2: a string column.
    Two-char keys (``"ts"``, ``"ip"``) are too short for a fixed word; they are
    matched on the top 4 bytes (:data:`_SHORT_WORDS`).
    """
    kinds: dict[int, int] = {}
    for name, is_int in zip(COLUMNS, IS_INT, strict=True):
        if len(name) <= 2:
            continue
        key = b'"' + name.encode() + b'"'
        before = [b""] if len(key) >= 8 else [b",", b"{", b" "] if len(key) == 7 else []
        for word in (int.from_bytes((b + key)[-8:], "little") for b in before):
            kinds[word] = 1 if is_int else 2
    words = np.array(sorted(kinds), np.uint64)
    for step in range(1, 10_000):
        mult = np.uint64((0x9E3779B97F4A7C15 * step) % 2**64)
        slots = (words * mult) >> _KEY_SHIFT
        if len(np.unique(slots)) == len(words):
            table = np.zeros(1 << (64 - int(_KEY_SHIFT)), np.uint64)
            kind = np.zeros(len(table), np.uint8)
            table[slots] = words
            kind[slots] = [kinds[w] for w in words.tolist()]
            return mult, table, kind
    raise AssertionError("no perfect hash for the known keys")  # pragma: no cover


_KEY_SHIFT = np.uint64(56)  # 256 slots
_KEY_MULT, _KEY_WORDS, _KEY_KINDS = _key_table()
# the rule: a key name has at least 5 chars (a fixed 8-byte word) or exactly 2 (top 4 bytes)
_SHORT_WORDS: tuple[tuple[np.uint64, np.uint8], ...] = tuple(
    (np.uint64(int.from_bytes(b'"' + c.encode() + b'"', "little")), np.uint8(1 if i else 2))
    for c, i in zip(COLUMNS, IS_INT, strict=True)
    if len(c) == 2
)
assert "ts" in COLUMNS and all(len(c) >= 5 or len(c) == 2 for c in COLUMNS)


def _lines_of(starts: np.ndarray, positions: np.ndarray) -> np.ndarray:
    return np.searchsorted(starts, positions, side="right") - 1
