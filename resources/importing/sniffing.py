"""What an uploaded file really is, told from its bytes, and whether a workbook is safe to unpack.

The name a browser sends is the user's to choose, so it never picks the reader: a workbook is a
zip archive holding `[Content_Types].xml` and `xl/workbook.xml`; a CSV file is text (UTF-8, or
Windows-1252 as Excel on Windows saves it) without control characters, and is taken only under
a .csv name, so a file that says it is a workbook and is not gets refused, not guessed at.

A workbook is checked before calamine opens it, with memory bounded by one 64 KB chunk:
- at most MAX_PARTS parts, each stored or deflated (what Excel, LibreOffice and XlsxWriter
  write), together unpacking to at most UNPACK_FACTOR × IMPORT_MAX_BYTES, none compressed more
  than MAX_RATIO : 1 — a zip bomb (kilobytes that unpack to gigabytes) is refused from its
  directory alone, in milliseconds;
- every part is then inflated in chunks and must unpack to exactly the size its header states (a
  header that lies is refused at the first byte past it) and hold no XML document type
  declaration (DTD): entity tricks (billion laughs, external entities) need one, and no
  spreadsheet program writes one. Calamine refuses such entities too; this names the problem.
"""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib

from django.conf import settings

from resources.importing.problems import UnusableFile

MB = 1024 * 1024
# Parts of the XML a workbook is made of unpack to about ten times the file (8.6× for the 14 MB
# roster of bench/import_roster.py); past this it is a bomb, or far beyond the row limit anyway.
UNPACK_FACTOR = 20
# The most one part may be compressed: real sheets deflate 5–15 : 1, deflate's ceiling is ~1030 : 1.
MAX_RATIO = 100
# Parts smaller than this are never refused for their ratio (a few KB of repeated styles may be).
RATIO_FLOOR = MB
# Each part of a zip costs memory to list; a workbook has a few dozen (hundreds for a huge one).
MAX_PARTS = 10_000
CHUNK = 64 * 1024

ZIP = b"PK\x03\x04"
OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, and any password-protected workbook
_ENCRYPTED = "EncryptionInfo".encode("utf-16-le")  # the stream an encrypted OOXML package carries
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1f]")
# A DTD's markers, in each encoding an XML part may declare (Excel writes UTF-8 only).
_DTD = tuple(
    marker.encode(codec)
    for marker in ("<!DOCTYPE", "<!ENTITY")
    for codec in ("utf-8", "utf-16-le", "utf-16-be")
)
_EOCD = b"PK\x05\x06"
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_EOCD = b"PK\x06\x06"


def max_bytes() -> int:
    """The largest file an import takes (setting IMPORT_MAX_BYTES)."""
    limit: int = settings.IMPORT_MAX_BYTES
    return limit


def max_unpacked() -> int:
    return UNPACK_FACTOR * max_bytes()


def megabytes(size: int) -> str:
    return f"{size / MB:,.1f} MB"


def _size(size: int) -> str:
    return megabytes(size) if size >= MB // 10 else f"{size:,} bytes"


def not_a_spreadsheet(name: str, why: str = "") -> UnusableFile:
    return UnusableFile(f"{name} is not an xlsx workbook or CSV file{f' ({why})' if why else ''}.")


def kind_of(name: str, data: bytes) -> str:
    """ "xlsx" or "csv", from the bytes; anything else is refused with what it is, when we can tell."""
    if data.startswith(ZIP):
        check_workbook(name, data)
        return "xlsx"
    if data.startswith(OLE):
        if _ENCRYPTED in data:
            raise UnusableFile(f"{name} is protected by a password; save a copy without one.")
        raise not_a_spreadsheet(
            name, "an Excel 97–2003 workbook or another Office file: save it as an Excel workbook, .xlsx"
        )
    if data.startswith(_UTF16_BOMS):
        raise not_a_spreadsheet(name, "UTF-16 text: save it as CSV UTF-8")
    if _CONTROL.search(data) or not name.lower().endswith(".csv"):
        raise not_a_spreadsheet(name)
    return "csv"


def decode_text(name: str, data: bytes) -> str:
    """A CSV file's text: UTF-8 (with or without a byte-order mark), else Windows-1252."""
    for encoding in ("utf-8-sig", "cp1252"):  # Excel's "CSV" is cp1252 on Windows
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise not_a_spreadsheet(name, "text neither in UTF-8 nor in Windows-1252: save it as CSV UTF-8")


def check_workbook(name: str, data: bytes) -> None:
    """Refuse a zip that is not a workbook, or that would unpack to too much or to anything odd."""
    parts = _part_count(data)
    if parts is not None and parts > MAX_PARTS:
        raise not_a_spreadsheet(name, f"a zip archive of {parts:,} parts; a workbook has a few dozen")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError, struct.error) as exc:
        raise not_a_spreadsheet(name, f"a damaged zip archive: {exc}") from None
    names = {m.filename for m in members}
    if "xl/workbook.xml" not in names or "[Content_Types].xml" not in names:
        raise not_a_spreadsheet(name, _what_zip(names, data))
    total = 0
    for member in members:
        if member.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise not_a_spreadsheet(
                name, f"{member.filename} is compressed in a way spreadsheet programs do not use"
            )
        total += member.file_size
        ratio = member.file_size / max(1, member.compress_size)
        if member.file_size > RATIO_FLOOR and ratio > MAX_RATIO:
            raise UnusableFile(
                f"{name} is not a workbook we can open: its part {member.filename} would unpack "
                f"{ratio:,.0f} times ({_size(member.file_size)} from {_size(member.compress_size)}); "
                f"real sheets unpack at most {MAX_RATIO} times. Save it again from your spreadsheet program."
            )
    if total > max_unpacked():
        raise UnusableFile(
            f"{name} unpacks to {megabytes(total)}; an import takes at most "
            f"{megabytes(max_unpacked())} of sheets. Split it into several files."
        )
    for member in members:
        _inflate_and_scan(name, data, member)


def _part_count(data: bytes) -> int | None:
    """The number of parts the zip's end record states, read before Python lists them all."""
    at = data.rfind(_EOCD, max(0, len(data) - 65_557))
    if at < 0 or len(data) < at + 22:
        return None  # zipfile says what is wrong
    count: int = struct.unpack_from("<H", data, at + 10)[0]
    locator = at - 20
    if locator >= 0 and data[locator : locator + 4] == _ZIP64_LOCATOR:
        record = struct.unpack_from("<Q", data, locator + 8)[0]
        if record + 56 <= len(data) and data[record : record + 4] == _ZIP64_EOCD:
            count = max(count, struct.unpack_from("<Q", data, record + 32)[0])
    return count


def _what_zip(names: set[str], data: bytes) -> str:
    if "xl/workbook.bin" in names:
        return "an Excel binary workbook, .xlsb: save it as an Excel workbook, .xlsx"
    if "mimetype" in names and b"application/vnd.oasis.opendocument" in data[:200]:
        return "an OpenDocument file, .ods: save it as an Excel workbook, .xlsx"
    if "word/document.xml" in names or "ppt/presentation.xml" in names:
        return "a Word or PowerPoint file"
    return "a zip archive without xl/workbook.xml"


def _inflate_and_scan(name: str, data: bytes, member: zipfile.ZipInfo) -> None:
    """Unpack one part chunk by chunk: exactly its stated size, and no DTD in its XML."""
    header = member.header_offset
    if data[header : header + 4] != ZIP:
        raise not_a_spreadsheet(name, f"a damaged zip archive: no header for {member.filename}")
    name_len, extra_len = struct.unpack_from("<HH", data, header + 26)
    start = header + 30 + name_len + extra_len
    packed = memoryview(data)[start : start + member.compress_size]
    inflater = zlib.decompressobj(-zlib.MAX_WBITS) if member.compress_type == zipfile.ZIP_DEFLATED else None
    size = 0
    tail = b""
    crc = 0
    for offset in range(0, len(packed), CHUNK):
        chunk: bytes | memoryview = packed[offset : offset + CHUNK]
        while chunk:
            if inflater is None:
                out, chunk = bytes(chunk), b""
            else:
                # max_length: never more than one chunk out at once, whatever the ratio.
                out = inflater.decompress(chunk, CHUNK)
                chunk = inflater.unconsumed_tail
            size += len(out)
            if size > member.file_size:
                raise UnusableFile(
                    f"{name} is not a workbook we can open: its part {member.filename} unpacks to more "
                    f"than the {_size(member.file_size)} its header states. Save it again from your "
                    "spreadsheet program."
                )
            crc = zlib.crc32(out, crc)
            seam = tail + out[:32]  # a marker may straddle two chunks
            if any(marker in out or marker in seam for marker in _DTD):
                raise UnusableFile(
                    f"{name} is not a workbook we can open: its part {member.filename} declares XML "
                    "entities (a DTD), which spreadsheet programs never write and which can hide "
                    "other files or explode in size. Save it again from your spreadsheet program."
                )
            tail = (tail + out)[-32:] if len(out) < 32 else out[-32:]
            if inflater is not None and inflater.eof:
                break
    if size != member.file_size or crc != member.CRC:
        raise not_a_spreadsheet(
            name, f"a damaged zip archive: {member.filename} is not what its header states"
        )
