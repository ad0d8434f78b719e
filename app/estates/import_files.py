"""Reading an uploaded import file into a header and rows of text cells, or one clear refusal.

Accepted: CSV in UTF-8 (with or without a byte-order mark) or Windows-1252, separated by
commas or semicolons (whichever the header line uses), with quoted fields; Excel's blank
rows are skipped; and .xlsx workbooks (the first sheet) through openpyxl. Anything else
raises `UnreadableFile` with one sentence a person can act on. Cells come back as text,
stripped of surrounding spaces and otherwise exactly as written (Zoë, Ngũgĩ, 日本).
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal

MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_COLUMNS = 200
ACCEPTED = "a CSV file (UTF-8 or Windows-1252, comma or semicolon separated) or an Excel .xlsx workbook"
_XLSX_MAGIC = b"PK\x03\x04"
# Bytes that never occur in a text file: a PDF, an image, an old .xls or a zip is refused.
_BINARY = {chr(c) for c in range(32) if chr(c) not in "\t\r\n\f\v"} | {"\x7f"}
_BOMS = ("\ufeff",)


class UnreadableFile(ValueError):
    """The file is not one of the accepted formats, or has no usable header row."""


@dataclass
class Table:
    """A file's header (lower-cased column names) and its data rows (row number, cells by column)."""

    headers: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    format: str = "csv"


def read_table(data: bytes, file_name: str = "") -> Table:
    """Read CSV or .xlsx bytes into a Table; raise UnreadableFile with the reason."""
    if not data:
        raise UnreadableFile(f"The file is empty: upload {ACCEPTED}.")
    if len(data) > MAX_BYTES:
        raise UnreadableFile(f"The file is larger than {MAX_BYTES // (1024 * 1024)} MB: split it into smaller files.")
    if data.startswith(_XLSX_MAGIC):
        records = _xlsx_records(data)
        kind = "xlsx"
    elif file_name.lower().endswith((".xlsx", ".xlsm", ".xls", ".ods", ".numbers")):
        raise UnreadableFile(f"{file_name} is not a readable .xlsx workbook: upload {ACCEPTED}.")
    else:
        records = _csv_records(_decode(data))
        kind = "csv"
    return _table(records, kind)


def _decode(data: bytes) -> str:
    """UTF-8 (BOM or not), else Windows-1252; refuse bytes that are not text."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("The file is UTF-16 text: save it as CSV UTF-8 (Excel: Save as → CSV UTF-8).")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise UnreadableFile(f"The file is neither UTF-8 nor Windows-1252 text: upload {ACCEPTED}.") from None
    if text.startswith(_BOMS):
        text = text[1:]
    if any(character in _BINARY for character in text):
        raise UnreadableFile(f"The file is not a text file: upload {ACCEPTED}.")
    return text


def _delimiter(text: str) -> str:
    """Comma or semicolon, whichever the header line (outside quotes) has more of."""
    header = ""
    for line in text.splitlines():
        if line.strip(" ,;\t"):
            header = line
            break
    commas = semicolons = 0
    quoted = False
    for character in header:
        if character == '"':
            quoted = not quoted
        elif not quoted and character == ",":
            commas += 1
        elif not quoted and character == ";":
            semicolons += 1
    return ";" if semicolons > commas else ","


def _csv_records(text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    records = []
    try:
        for record in reader:
            records.append(record)
            if len(records) > MAX_ROWS + 1:
                raise UnreadableFile(f"The file has more than {MAX_ROWS:,} rows: split it into smaller files.")
    except csv.Error as error:
        raise UnreadableFile(f"The file is not readable as CSV (line {reader.line_num}: {error}).") from None
    return records


def _xlsx_records(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        # Not data_only: a formula must reach the checks as the "=..." it is, never as its value.
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, IndexError, AttributeError,
            EOFError, LookupError, SyntaxError):
        raise UnreadableFile(f"The file is not a readable .xlsx workbook: upload {ACCEPTED}.") from None
    except Exception:  # openpyxl raises many private types for a damaged workbook
        raise UnreadableFile(f"The file is not a readable .xlsx workbook: upload {ACCEPTED}.") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise UnreadableFile("The workbook has no sheet.")
        records = []
        for values in sheet.iter_rows(values_only=True):
            records.append([_xlsx_text(value) for value in values[:MAX_COLUMNS + 1]])
            if len(records) > MAX_ROWS + 1:
                raise UnreadableFile(f"The workbook has more than {MAX_ROWS:,} rows: split it into smaller files.")
        return records
    except UnreadableFile:
        raise
    except Exception:
        raise UnreadableFile(f"The file is not a readable .xlsx workbook: upload {ACCEPTED}.") from None
    finally:
        book.close()


def _xlsx_text(value) -> str:
    """A cell as the text a person sees: 12.0 → "12", dates in ISO form."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if value.is_integer():
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def _table(records: list[list[str]], kind: str) -> Table:
    # The header is the first non-blank row; spreadsheets leave blank rows above it sometimes.
    start = next((i for i, record in enumerate(records) if any(cell.strip() for cell in record)), None)
    if start is None:
        raise UnreadableFile("The file has no header row: the first row names the columns.")
    headers = [cell.strip().lstrip("\ufeff").strip().lower() for cell in records[start]]
    while headers and not headers[-1]:
        headers.pop()  # Excel's trailing empty columns
    if len(headers) > MAX_COLUMNS:
        raise UnreadableFile(f"The file has more than {MAX_COLUMNS} columns.")
    seen = set()
    for name in headers:
        if name and name in seen:
            raise UnreadableFile(f"The column {name!r} appears twice in the header row.")
        seen.add(name)
    table = Table(headers=headers, format=kind)
    for index in range(start + 1, len(records)):
        record = records[index]
        if not any(cell.strip() for cell in record):
            continue  # blank rows, including the ones Excel leaves at the end
        cells = {name: (record[i].strip() if i < len(record) else "")
                 for i, name in enumerate(headers) if name}
        table.rows.append((index + 1, cells))
    return table
