"""Rosters as bureaus keep them: units, windows and officers from Excel ``.xlsx`` or CSV in any encoding Excel writes.

A bureau's roster comes out of Excel: a ``.xlsx`` workbook, or a CSV saved by
Chinese Windows Excel in GBK/GB18030 (its default), "CSV UTF-8" (with a BOM),
or "Unicode text" (UTF-16). This module reads them all:

- **Encoding** (CSV): a BOM decides (UTF-8, UTF-16, UTF-32); else the bytes are
  tried as strict UTF-8 and as GB18030. When both decode — a GBK file whose
  bytes happen to be valid UTF-8, as the GBK codes of 卢 鲁 陆 路 毛 梅 莫 牟 are
  (卢 = ``C2 AC`` = UTF-8 ``¬``) — the decoding whose cells read as plausible
  Chinese (common hanzi, not Latin-1 debris) wins. ``--encoding`` overrides.
  The encoding used is reported (:attr:`Roster.source`).
- **Headers**: the English column names (``id``, ``name``, ``unit_id`` …) or the
  Chinese ones a bureau writes (警号, 姓名, 单位, 窗口 …; :data:`HEADERS`).
- **Rows**: blank rows (Excel's leftover ``,,,``) are skipped; CRLF is fine.
- **Errors**: every problem of every file at once, each naming file, line and
  column, in English and Chinese (:class:`RosterError`); nothing is imported
  unless every file is clean (:func:`import_rosters`, one transaction).
- **References**: a unit or window column may hold an id or the unit's/window's
  name as the bureau writes it (城关派出所); names are resolved to ids.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime as dt
import io
import pathlib
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from collector.errors import UsageError
from collector.store import Store

TABLES = ("units", "windows", "officers")
ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")  # the protocol's ids
# Columns in store order: (required, optional), as ``Store.import_registry`` takes them.
COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "units": (("id", "name"), ("parent_id", "leader")),
    "windows": (("id", "unit_id", "name"), ()),
    "officers": (("id", "name", "unit_id"), ("window_id",)),
}
TABLE_ZH = {"units": "单位", "windows": "窗口", "officers": "民警"}

# Header spellings accepted beside the column names (matched after stripping spaces; English case-insensitive).
HEADERS: dict[str, dict[str, tuple[str, ...]]] = {
    "units": {
        "id": ("单位编号", "单位代码", "编号", "代码"),
        "name": ("单位名称", "名称", "单位"),
        "parent_id": ("上级单位", "上级单位编号", "上级单位名称", "上级", "parent"),
        "leader": ("负责人", "单位负责人", "领导", "单位领导"),
    },
    "windows": {
        "id": ("窗口编号", "窗口代码", "编号", "代码"),
        "unit_id": ("单位", "所属单位", "单位编号", "单位名称", "unit"),
        "name": ("窗口名称", "名称", "窗口"),
    },
    "officers": {
        "id": ("警号", "编号", "badge"),
        "name": ("姓名", "名字"),
        "unit_id": ("单位", "所属单位", "单位编号", "单位名称", "unit"),
        "window_id": ("窗口", "所在窗口", "窗口编号", "窗口名称", "window"),
    },
}

# Spaces between two hanzi of a name (full-width U+3000 or ASCII), which rosters use to line names up.
PADDING = re.compile(r"(?<=[\u4e00-\u9fff])[\s\u3000]+(?=[\u4e00-\u9fff])")
# A workbook's sheet for each roster: the first whose name holds one of these words, else its first sheet.
SHEETS = {"units": ("单位", "unit"), "windows": ("窗口", "window"), "officers": ("民警", "警员", "人员", "officer")}
# What Python calls the encodings a user may name with --encoding; GBK and GB2312 are read as their superset GB18030.
SUPERSETS = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "euc_cn": "gb18030"}
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))  # fmt: skip
ENCODING_LABEL = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 (BOM)", "utf-16": "UTF-16 (BOM)", "utf-32": "UTF-32 (BOM)",
                  "gb18030": "GB18030/GBK"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class Problem:
    """One thing wrong with a roster: where (file, line, column) and what, in English and Chinese."""

    path: pathlib.Path
    line: int | None
    column: str | None  # "3 (姓名)" in a CSV, "C (姓名)" in a workbook
    en: str
    zh: str

    def __str__(self) -> str:
        where = str(self.path) + (f":{self.line}" if self.line is not None else "")
        col = f" column {self.column}:" if self.column else ""
        return f"{where}:{col} {self.en} / {self.zh}"


class RosterError(UsageError):
    """Rosters that cannot be imported; ``problems`` lists every one, the message all of them.

    ``sources`` (file -> how it was read) end the message: a wrong guess at the
    encoding shows there.
    """

    def __init__(self, problems: Sequence[Problem], sources: Mapping[pathlib.Path, str] | None = None) -> None:
        self.problems = list(problems)
        files = len({p.path for p in self.problems})
        head = (
            f"{len(self.problems)} problem(s) in {files} file(s); nothing imported / "
            f"{files} 个文件共 {len(self.problems)} 处问题，未导入任何数据:"
        )
        read = [f"({path}: read as {how})" for path, how in (sources or {}).items() if how]
        super().__init__("\n  ".join([head, *map(str, self.problems), *read]))


@dataclasses.dataclass
class Roster:
    """One roster file read: its rows in ``COLUMNS`` order, each row's line, and how the file was read."""

    path: pathlib.Path
    table: str
    rows: list[tuple[str | None, ...]]
    lines: list[int]
    source: str  # "GB18030/GBK (detected: …)", "Excel workbook, sheet 'Sheet1'", …
    headers: dict[str, str]  # column name -> the header as written in the file ("unit_id" -> "单位")
    positions: dict[str, str]  # column name -> "3" in a CSV, "C" in a workbook
    ids: dict[str, int] = dataclasses.field(default_factory=dict)  # id -> its line
    problems: list[Problem] = dataclasses.field(default_factory=list)  # what keeps it from being imported

    def column(self, name: str) -> str:
        return f"{self.positions[name]} ({self.headers[name]})"


# -- encoding ---------------------------------------------------------------------------------------------------------


def encoding_name(name: str) -> str:
    """The codec for ``--encoding NAME`` (GBK/GB2312 read as GB18030); ``UsageError`` for an unknown name."""
    try:
        codec = codecs.lookup(name).name
        b"\0\0\0\0".decode(codec)  # a text encoding, not base64 (an empty input is not looked up)
    except UnicodeDecodeError:
        pass
    except LookupError:
        raise UsageError(
            f"--encoding {name!r}: unknown encoding (e.g. utf-8, gb18030, gbk, utf-16) / 未知编码"
        ) from None
    return SUPERSETS.get(codec.replace("-", "_"), codec)


def _score(ch: str) -> int:
    """How plausible a character of a roster is: 0 ASCII, 2 common hanzi, 1 other plausible, -1 implausible.

    Plausible: hanzi of GB2312 (the 6763 characters names and unit names in
    practice use; its 3755 most common, level 1, count double), CJK punctuation
    and full-width forms. Implausible: everything else — Latin-1 debris
    (``¬ ³ ½ · ë ÷``) from GBK read as UTF-8, rare hanzi and symbols from UTF-8
    read as GBK, control characters.
    """
    if ch.isascii():
        return 0
    cp = ord(ch)
    if 0x4E00 <= cp <= 0x9FFF:
        try:
            code = ch.encode("gb2312")
        except UnicodeEncodeError:
            return -1
        return 2 if code[0] <= 0xD7 else 1  # level 1: rows 16-55 (0xB0-0xD7)
    return 1 if 0x3000 <= cp <= 0x303F or 0xFF01 <= cp <= 0xFF5E or ch in "“”‘’—…" else -1


def _plausibility(text: str) -> tuple[int, int]:
    """(implausible, plausible) scores of the non-ASCII characters of a roster's text."""
    scores = [_score(ch) for ch in text if not ch.isascii()]
    return sum(1 for s in scores if s < 0), sum(s for s in scores if s > 0)


def _garbled_cell(text: str) -> str | None:
    """The first cell of ``text`` holding an implausible character, if any."""
    for line in text.splitlines():
        for cell in line.replace("\t", ",").split(","):
            if any(_score(ch) < 0 for ch in cell):
                return cell.strip()
    return None


def _bad_lines(raw: bytes, encoding: str) -> list[tuple[int, int, bytes]]:
    """(line, column, bytes) of each line of ``raw`` that does not decode (columns count characters, from 1)."""
    out: list[tuple[int, int, bytes]] = []
    for no, line in enumerate(raw.split(b"\n"), start=1):
        try:
            line.decode(encoding)
        except UnicodeDecodeError as exc:
            col = len(line[: exc.start].decode(encoding, errors="replace")) + 1
            out.append((no, col, line[exc.start : exc.start + 2]))
    return out


def decode(path: pathlib.Path, raw: bytes, encoding: str | None) -> tuple[str, str, list[Problem]]:
    """``(text, how it was read, problems)`` of a CSV file's bytes: BOM, strict UTF-8, GB18030, plausible names."""
    if encoding is None:
        for bom, codec in BOMS:
            if raw.startswith(bom):
                encoding = codec
                how = "detected from its BOM / 按BOM识别"
                break
    else:
        how = "as given by --encoding / 按指定编码"
    if encoding is not None:
        try:
            text = raw.decode(encoding).lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            if encoding.startswith(("utf-16", "utf-32")):  # no line splitting in a wide encoding
                line = raw[: exc.start].decode(encoding, errors="replace").count("\n") + 1
                where = [(line, 0, raw[exc.start : exc.start + 2])]
            else:
                where = _bad_lines(raw, encoding)
            return "", "", [_undecodable(path, encoding, line, col, b, both=False) for line, col, b in where]
        how = f"{ENCODING_LABEL.get(encoding, encoding)} {how}"
        if (cell := _garbled_cell(text)) is not None:  # said, not refused: names can hold rare characters
            how += f"; warning: {cell!r} does not look like Chinese text / 警告：疑似乱码，请核对编码"
        return text, how, []
    texts: dict[str, str] = {}
    for codec in ("utf-8", "gb18030"):
        try:
            texts[codec] = raw.decode(codec)
        except UnicodeDecodeError:
            pass
    if not texts:  # neither: name the lines of the likelier one
        codec = min(("gb18030", "utf-8"), key=lambda c: len(_bad_lines(raw, c)))
        return "", "", [_undecodable(path, codec, line, col, b, both=True) for line, col, b in _bad_lines(raw, codec)]
    if len(texts) == 1:
        ((codec, text),) = texts.items()
        return text, f"{ENCODING_LABEL[codec]} (detected / 自动识别)", []
    utf8, gb = (_plausibility(texts[c]) for c in ("utf-8", "gb18030"))
    if gb[0] < utf8[0] or (gb[0] == utf8[0] and gb[1] > utf8[1]):
        sample = _sample_difference(texts["utf-8"], texts["gb18030"])
        how = (
            f"GB18030/GBK (detected: the bytes are also valid UTF-8, but read so the names are garbled{sample}"
            " / 自动识别：按UTF-8解读姓名为乱码)"
        )
        return texts["gb18030"], how, []
    return texts["utf-8"], "UTF-8 (detected / 自动识别)", []


def _sample_difference(a: str, b: str) -> str:
    """``, e.g. '¬' instead of '卢'`` for the first cell where two decodings differ."""
    for x, y in zip(a.split(","), b.split(","), strict=False):
        if x != y:
            return f", e.g. {x.strip()!r} instead of {y.strip()!r}"
    return ""


def _undecodable(path: pathlib.Path, codec: str, line: int, col: int, data: bytes, *, both: bool) -> Problem:
    """Bytes ``data`` at ``line``/``col`` that ``codec`` cannot read (``both``: nor the other of UTF-8 and GB18030)."""
    label = ENCODING_LABEL.get(codec, codec)
    tried = "as UTF-8 or GB18030/GBK" if both else f"as {label}"
    return Problem(
        path, line, str(col) if col else None,
        f"bytes {data.hex(' ')} cannot be read {tried}; save the file as CSV UTF-8 or .xlsx, or give --encoding",
        f"无法按{label}解码，请另存为“CSV UTF-8”或.xlsx，或用 --encoding 指定编码",
    )  # fmt: skip


# -- cells ------------------------------------------------------------------------------------------------------------


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each CSV record (CRLF and quoted line breaks handled by ``csv``).

    Tab-separated when the first line has tabs and no commas (Excel's "Unicode text" is UTF-16 with tabs).
    """
    first = text.lstrip("\r\n").split("\n", 1)[0]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if "\t" in first and "," not in first else ",")
    start = 1
    for cells in reader:
        yield start, cells
        start = reader.line_num + 1


def _xlsx_rows(path: pathlib.Path, raw: bytes, table: str) -> tuple[str, Iterator[tuple[int, list[str]]]] | Problem:
    """The roster's sheet name and (row number, cells as text) of each of its rows; a ``Problem`` if unreadable.

    The sheet: the first whose name says the roster (民警, 单位, 窗口: one workbook may hold all three), else the first.
    """
    import openpyxl  # only a roster workbook needs it
    from openpyxl.utils.exceptions import InvalidFileException

    try:  # from the bytes: openpyxl refuses a file whose name does not end in .xlsx, whatever it holds
        book = openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, TypeError, InvalidFileException) as exc:
        return Problem(path, None, None, f"not a readable .xlsx workbook ({exc})", "无法读取该Excel工作簿")
    named = [ws for ws in book.worksheets if any(w in ws.title.casefold() for w in SHEETS[table])]
    sheet = (named or book.worksheets)[0]

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for no, values in enumerate(sheet.iter_rows(values_only=True), start=1):  # from A1, empty rows too
                yield no, [_cell_text(v) for v in values]
        finally:
            book.close()

    return str(sheet.title), rows()


def _cell_text(value: Any) -> str:
    """A workbook cell as the text a person sees: ``10293`` not ``10293.0``, dates as ``YYYY-MM-DD``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _column_letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return str(get_column_letter(index + 1))


# -- reading ----------------------------------------------------------------------------------------------------------


def _header_map(table: str) -> dict[str, str]:
    """Every accepted header spelling (normalised) -> column name."""
    required, optional = COLUMNS[table]
    out = {c: c for c in required + optional}
    for column, names in HEADERS[table].items():
        out.update({n.casefold(): column for n in names})
    return out


def _normal(header: str) -> str:
    return "".join(header.replace("\ufeff", "").split()).casefold()


def read_roster(path: pathlib.Path, table: str, encoding: str | None = None) -> Roster:
    """One roster file (``.xlsx`` or CSV); ``RosterError`` naming every bad line and column."""
    roster = _read(pathlib.Path(path), table, encoding_name(encoding) if encoding else None)
    if roster.problems:
        raise RosterError(roster.problems, {roster.path: roster.source})
    return roster


def read_rosters(files: Mapping[str, pathlib.Path | None], encoding: str | None = None) -> dict[str, Roster]:
    """The rosters of ``files`` (table -> path; ``None`` skipped), each with its ``problems``.

    ``encoding`` (``--encoding``) applies to every CSV file; ``UsageError`` if Python does not know it.
    """
    codec = encoding_name(encoding) if encoding else None
    return {table: _read(pathlib.Path(path), table, codec) for table, path in files.items() if path is not None}


def problems(rosters: Mapping[str, Roster]) -> list[Problem]:
    """Every problem of every roster, file by file, line by line."""
    return [p for r in rosters.values() for p in sorted(r.problems, key=lambda p: p.line or 0)]


def _read(path: pathlib.Path, table: str, encoding: str | None) -> Roster:
    roster = Roster(path, table, [], [], "", {}, {})
    try:
        raw = path.read_bytes()
    except OSError as exc:
        roster.problems.append(Problem(path, None, None, f"cannot read ({exc.strerror})", "无法读取文件"))
        return roster
    if raw.startswith(b"PK\x03\x04"):
        book = _xlsx_rows(path, raw, roster.table)
        if isinstance(book, Problem):
            roster.problems.append(book)
            return roster
        title, records = book
        roster.source, letters = f"Excel workbook, sheet {title!r} / Excel工作簿，工作表“{title}”", True
    elif raw.startswith(b"\xd0\xcf\x11\xe0"):
        roster.problems.append(Problem(path, None, None, "an old Excel .xls workbook: save it as .xlsx or CSV",
                                       "旧版Excel(.xls)文件，请另存为.xlsx或CSV"))  # fmt: skip
        return roster
    else:
        text, roster.source, found = decode(path, raw, encoding)
        if found:
            roster.problems += found
            return roster
        records, letters = _csv_rows(text), False
    _rows(roster, records, letters)
    return roster


def _rows(roster: Roster, records: Iterator[tuple[int, list[str]]], letters: bool) -> None:
    """Read the header and the rows of ``records`` into ``roster`` (its problems too)."""
    header: list[str | None] = []
    for line, cells in records:
        if not any(c.strip() for c in cells):
            continue  # a blank row, or Excel's leftover ",,,"
        if not roster.headers:
            if _is_title(roster.table, cells):
                continue  # a title row above the header ("城关派出所民警名册")
            header = _header(roster, line, cells, letters)
            if roster.problems:
                return
            continue
        _record(roster, line, cells, header, letters)
    if not roster.headers:
        required = COLUMNS[roster.table][0]
        en = f"empty file (need a header row: {', '.join(required)})"
        roster.problems.append(Problem(roster.path, None, None, en, "文件为空，需要表头行"))


def _is_title(table: str, cells: list[str]) -> bool:
    """A row with one cell filled that names no column: a sheet's title, not its header."""
    filled = [c for c in cells if c.strip()]
    return len(filled) == 1 and _normal(filled[0]) not in _header_map(table)


def _position(index: int, letters: bool) -> str:
    return _column_letter(index) if letters else str(index + 1)


def _header(roster: Roster, line: int, cells: list[str], letters: bool) -> list[str | None]:
    """Map the header row onto column names; problems for unknown, repeated or missing columns."""
    path, table = roster.path, roster.table
    required, optional = COLUMNS[table]
    names = _header_map(table)
    header: list[str | None] = []
    for i, cell in enumerate(cells):
        written = cell.strip().lstrip("\ufeff")
        column = names.get(_normal(cell)) if written else None
        where = f"{_position(i, letters)} ({written})"
        if written and column is None:
            roster.problems.append(Problem(path, line, where, f"unknown column {written!r}", f"未知列“{written}”"))
        elif column is not None and column in roster.headers:
            roster.problems.append(Problem(path, line, where, f"column {column} given twice", f"“{column}”列重复"))
        elif column is not None:
            roster.headers[column] = written
            roster.positions[column] = _position(i, letters)
        header.append(column)
    missing = [c for c in required if c not in roster.headers]
    if missing:
        roster.problems.append(Problem(
            path, line, None, f"missing column(s) {', '.join(missing)} ({HEADERS[table][missing[0]][0]} …)",
            f"缺少列：{'、'.join(HEADERS[table][c][0] for c in missing)}",
        ))  # fmt: skip
    if roster.problems:
        en = f"{', '.join(required)}[, {', '.join(optional)}]" if optional else ", ".join(required)
        zh = "、".join(HEADERS[table][c][0] for c in required) + (
            f"[、{'、'.join(HEADERS[table][c][0] for c in optional)}]" if optional else ""
        )
        other = [t for t in TABLES if t != table and _covers(t, cells)]
        hint = f"; this looks like the {other[0]} roster" if other else ""
        hint_zh = f"；该文件像是{TABLE_ZH[other[0]]}名册" if other else ""
        roster.problems.append(Problem(path, line, None, f"a {table} roster has the columns {en} or {zh}{hint}",
                                       f"{TABLE_ZH[table]}名册的列为 {zh}{hint_zh}"))  # fmt: skip
    return header


def _covers(table: str, cells: list[str]) -> bool:
    """Whether a header row names every required column of ``table`` and nothing unknown to it."""
    names = _header_map(table)
    found = {names.get(_normal(c)) for c in cells if c.strip()}
    return None not in found and set(COLUMNS[table][0]) <= found


def _record(roster: Roster, line: int, cells: list[str], header: list[str | None], letters: bool) -> None:
    """Check one data row and add it to ``roster``, or its problems (each naming the column)."""
    path = roster.path
    required, optional = COLUMNS[roster.table]
    values: dict[str, str] = {}
    found: list[Problem] = []
    for i, cell in enumerate(cells):
        column = header[i] if i < len(header) else None
        if column is not None:
            values[column] = cell.strip()
            if column == "name" and roster.table == "officers":  # 王　芳: padded to line up with 3-character names
                values[column] = PADDING.sub("", values[column])
        elif cell.strip():
            found.append(Problem(path, line, _position(i, letters), f"value {cell.strip()!r} in a column without a "
                                 "header", f"无表头的列中有数据“{cell.strip()}”"))  # fmt: skip
    for column in required:
        if not values.get(column):
            zh = HEADERS[roster.table][column][0]
            found.append(Problem(path, line, roster.column(column), f"empty {column}", f"{zh}为空"))
    ident = values.get("id", "")
    if ident and not _is_id(ident):
        found.append(Problem(path, line, roster.column("id"), f"id {ident!r}: use 1-32 letters, digits, _ or -",
                             "编号只能用1-32个字母、数字、_ 或 -"))  # fmt: skip
    if ident in roster.ids:
        first = roster.ids[ident]
        found.append(Problem(path, line, roster.column("id"), f"id {ident!r} also on line {first}",
                             f"编号“{ident}”与第 {first} 行重复"))  # fmt: skip
    elif ident:
        roster.ids[ident] = line
    if found:
        roster.problems += found
    else:
        roster.rows.append(tuple(values.get(c) or None for c in required + optional))
        roster.lines.append(line)


def _is_id(value: str) -> bool:
    return 0 < len(value) <= 32 and not set(value) - ID_CHARS


# -- references and import --------------------------------------------------------------------------------------------


def resolve(rosters: Mapping[str, Roster], units: Mapping[str, str], windows: Mapping[str, tuple[str, str]]) -> None:
    """Turn unit and window names in reference columns into ids; a problem on each roster for every unknown one.

    ``units`` (id -> name) and ``windows`` (id -> (unit id, name)) are what the
    store already holds; the rosters' own units and windows count too. A
    reference is an id, or a name that belongs to exactly one unit (window:
    one window of the officer's unit, else one window anywhere).
    """
    units = dict(units)
    units.update({str(r[0]): str(r[1]) for r in _rows_of(rosters, "units")})
    unit_names = _by_name((name, uid) for uid, name in units.items())

    def unit_named(row: tuple[str | None, ...], value: str) -> list[str]:
        return unit_names.get(value, [])

    if "units" in rosters:
        _resolve_column(rosters["units"], "parent_id", 2, units, unit_named)
    if "windows" in rosters:
        _resolve_column(rosters["windows"], "unit_id", 1, units, unit_named)
    windows = dict(windows)
    windows.update({str(r[0]): (str(r[1]), str(r[2])) for r in _rows_of(rosters, "windows")})
    window_names = _by_name((name, wid) for wid, (_, name) in windows.items())
    unit_window_names = _by_name(((unit, name), wid) for wid, (unit, name) in windows.items())

    def window_named(row: tuple[str | None, ...], value: str) -> list[str]:
        return unit_window_names.get((row[2], value)) or window_names.get(value, [])

    if "officers" in rosters:
        _resolve_column(rosters["officers"], "unit_id", 2, units, unit_named)
        _resolve_column(rosters["officers"], "window_id", 3, windows, window_named)


def _by_name(pairs: Iterable[tuple[Any, str]]) -> dict[Any, list[str]]:
    """name -> the ids that carry it."""
    out: dict[Any, list[str]] = {}
    for name, ident in pairs:
        out.setdefault(name, []).append(ident)
    return out


def _rows_of(rosters: Mapping[str, Roster], table: str) -> list[tuple[str | None, ...]]:
    return rosters[table].rows if table in rosters else []


def _resolve_column(
    roster: Roster,
    column: str,
    index: int,
    ids: Mapping[str, Any],
    named: Callable[[tuple[str | None, ...], str], list[str]],
) -> None:
    """Replace names by ids in ``column`` (at ``index`` of the rows); a problem for an unknown or ambiguous one."""
    what, what_zh = ("window", "窗口") if column == "window_id" else ("unit", "单位")
    for k, (row, line) in enumerate(zip(roster.rows, roster.lines, strict=True)):
        value = row[index]
        if value is None or value in ids:
            continue
        matches = named(row, value)
        if len(matches) == 1:
            roster.rows[k] = row[:index] + (matches[0],) + row[index + 1 :]
            continue
        if matches:
            en = f"{what} name {value!r} is ambiguous ({', '.join(sorted(matches))}): write the id"
            zh = f"{what_zh}名称“{value}”不唯一（{'、'.join(sorted(matches))}），请填写编号"
        else:
            en, zh = f"{what} {value!r} does not exist (neither an id nor a name)", f"{what_zh}“{value}”不存在"
        roster.problems.append(Problem(roster.path, line, roster.column(column), en, zh))


async def import_rosters(store: Store, rosters: Mapping[str, Roster]) -> None:
    """Check references against ``store`` and the rosters, then import all of them in one transaction.

    ``RosterError`` with every problem of every file (reading and references) if
    there is any: then nothing is imported.
    """
    units = {str(r[0]): str(r[1]) for r in await store.db.fetch("SELECT id, name FROM units")}
    windows = {str(r[0]): (str(r[1]), str(r[2])) for r in await store.db.fetch("SELECT id, unit_id, name FROM windows")}
    resolve(rosters, units, windows)
    if found := problems(rosters):
        raise RosterError(found, {r.path: r.source for r in rosters.values()})
    await store.import_registry(
        units=_rows_of(rosters, "units"),  # type: ignore[arg-type]
        windows=_rows_of(rosters, "windows"),  # type: ignore[arg-type]
        officers=_rows_of(rosters, "officers"),  # type: ignore[arg-type]
    )
