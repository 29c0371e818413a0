"""Hostile uploads: what a file is comes from its bytes; zip bombs, lying zip headers and XML
entity tricks are refused quickly, in bounded memory, with a line that names the problem, and
nothing is written; formulas are never evaluated nor stored as formulas.

Every hostile file is made here, small, from a real workbook: nothing large is committed.
"""

from __future__ import annotations

import io
import struct
import time
import tracemalloc
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import openpyxl
import pytest
import xlsxwriter
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from pytest_django import Settings
from python_calamine import CalamineWorkbook

from incidents.models import Incident
from reports.writers import neutralise
from resources.importing import InvalidRows, UnusableFile, import_roster
from resources.models import Expert
from tests import factories
from tests.test_import_roster import EXPERT_HEAD, expert, roster
from tests.test_settings import run

pytestmark = pytest.mark.django_db
MB = 1024 * 1024
EXPERTS_PART = "xl/worksheets/sheet1.xml"  # openpyxl writes text cells inline, in the sheet


@pytest.fixture
def catalog(db: None) -> None:
    factories.QualificationFactory(code="RN", name="Registered Nurse", kind="license", jurisdictional=True)


# --- Making hostile files -------------------------------------------------------------------------


def good_workbook(tmp_path: Path) -> bytes:
    """A valid roster workbook (openpyxl, as Excel saves one): Ana with a license and a window."""
    return roster(tmp_path).read_bytes()


def with_part(data: bytes, part: str, content: bytes) -> bytes:
    """The workbook with one part's content replaced (or added), otherwise unchanged."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            if info.filename != part:
                archive.writestr(info.filename, source.read(info.filename))
        archive.writestr(part, content)
    return out.getvalue()


def raw_zip(parts: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip archive of already deflated parts: (name, raw deflate data, crc, stated size)."""
    out = io.BytesIO()
    central = io.BytesIO()
    for name, packed, crc, size in parts:
        offset = out.tell()
        encoded = name.encode()
        fields = (20, 0, 8, 0, 0, crc, len(packed), size, len(encoded), 0)
        out.write(b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", *fields) + encoded + packed)
        entry = (20, 20, 0, 8, 0, 0, crc, len(packed), size, len(encoded), 0, 0, 0, 0, 0, offset)
        central.write(b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", *entry) + encoded)
    directory = central.getvalue()
    start = out.tell()
    out.write(directory)
    out.write(
        struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(parts), len(parts), len(directory), start, 0)
    )
    return out.getvalue()


def deflate(content: bytes) -> tuple[bytes, int, int]:
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(content) + packer.flush(), zlib.crc32(content), len(content)


def deflated_zeros(megabytes: int) -> tuple[bytes, int, int]:
    """`megabytes` MB of zero bytes, deflated, built in a moment from one compressed megabyte: after
    a full flush the compressor starts afresh, so that block may simply be repeated."""
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = packer.compress(bytes(MB)) + packer.flush(zlib.Z_FULL_FLUSH)
    final = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # an empty last block
    crc = 0
    zeros = bytes(MB)
    for _ in range(megabytes):
        crc = zlib.crc32(zeros, crc)
    return block * megabytes + final, crc, megabytes * MB


def bomb_with(tmp_path: Path, part: str, payload: tuple[bytes, int, int]) -> bytes:
    """A real workbook whose `part` is replaced by an already deflated payload."""
    source = zipfile.ZipFile(io.BytesIO(good_workbook(tmp_path)))
    parts = [(i.filename, *deflate(source.read(i.filename))) for i in source.infolist() if i.filename != part]
    return raw_zip([*parts, (part, *payload)])


LAUGHS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%s;" % (str(i - 1).encode() if i > 1 else b"")) * 10)
        for i in range(1, 10)
    )
    + b"]>\n"
)


def laughs_workbook(tmp_path: Path) -> bytes:
    """Billion laughs: a cell that would expand to 10⁹ "lol"s if entities were expanded."""
    data = good_workbook(tmp_path)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read(EXPERTS_PART)
    body = sheet.split(b"?>", 1)[-1].replace(b"<t>Garcia</t>", b"<t>&lol9;</t>", 1)
    assert b"&lol9;" in body
    return with_part(data, EXPERTS_PART, LAUGHS + body)


def external_entity_workbook(tmp_path: Path, target: str = "file:///etc/passwd") -> bytes:
    """XXE: a cell that would hold a file of the server if external entities were read."""
    data = good_workbook(tmp_path)
    sheet = zipfile.ZipFile(io.BytesIO(data)).read(EXPERTS_PART)
    body = sheet.split(b"?>", 1)[-1].replace(b"<t>Garcia</t>", b"<t>&xxe;</t>", 1)
    dtd = f'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY xxe SYSTEM "{target}">]>'.encode()
    return with_part(data, EXPERTS_PART, dtd + body)


@contextmanager
def bounded(seconds: float, megabytes: int) -> Iterator[None]:
    """The block runs within `seconds` and allocates at most `megabytes` MB of Python memory."""
    tracemalloc.start()
    started = time.monotonic()
    try:
        yield
    finally:
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert elapsed < seconds, f"took {elapsed:.2f} s"
    assert peak < megabytes * MB, f"peak {peak / MB:.1f} MB"


def refused(tmp_path: Path, data: bytes, name: str = "roster.xlsx") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(UnusableFile) as caught:
        import_roster(path)
    return caught.value.message


# --- What a file is comes from its bytes -------------------------------------------------------------


def test_a_workbook_is_read_as_one_whatever_its_name(tmp_path: Path, catalog: None) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(good_workbook(tmp_path))
    assert import_roster(path).counts["experts"].created == 1
    assert Expert.objects.get().email == "ana@example.org"


def test_a_csv_file_with_binary_past_its_first_block_is_refused(tmp_path: Path, catalog: None) -> None:
    text = ",".join(EXPERT_HEAD) + "\n" + ",".join(str(v) for v in expert()) + "\n"
    data = text.encode() + b" " * 70_000 + b"\x00\x01\x02 binary tail"
    assert refused(tmp_path, data, "experts.csv") == "experts.csv is not an xlsx workbook or CSV file."
    assert not Expert.objects.exists()


def test_csv_text_in_neither_utf8_nor_windows_1252_is_named(tmp_path: Path) -> None:
    data = b"email,first_name\nana@example.org,\x81\x8d\n"  # bytes Windows-1252 leaves undefined
    assert refused(tmp_path, data, "experts.csv") == (
        "experts.csv is not an xlsx workbook or CSV file "
        "(text neither in UTF-8 nor in Windows-1252: save it as CSV UTF-8)."
    )


def test_utf16_text_is_named(tmp_path: Path) -> None:
    data = "email\tfirst_name\n".encode("utf-16")
    assert refused(tmp_path, data, "experts.csv") == (
        "experts.csv is not an xlsx workbook or CSV file (UTF-16 text: save it as CSV UTF-8)."
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
            "roster.xlsx is not an xlsx workbook or CSV file (an Excel 97–2003 workbook or another "
            "Office file: save it as an Excel workbook, .xlsx).",
        ),
        (
            b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600) + "EncryptionInfo".encode("utf-16-le"),
            "roster.xlsx is protected by a password; save a copy without one.",
        ),
    ],
    ids=["xls", "password"],
)
def test_office_files_that_are_not_xlsx_are_named(tmp_path: Path, data: bytes, message: str) -> None:
    assert refused(tmp_path, data) == message


def zip_of(parts: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return out.getvalue()


@pytest.mark.parametrize(
    ("parts", "why"),
    [
        (
            {"mimetype": b"application/vnd.oasis.opendocument.spreadsheet", "content.xml": b"<x/>"},
            "an OpenDocument file, .ods: save it as an Excel workbook, .xlsx",
        ),
        (
            {"[Content_Types].xml": b"<Types/>", "xl/workbook.bin": b"\x83\x01"},
            "an Excel binary workbook, .xlsb: save it as an Excel workbook, .xlsx",
        ),
        ({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w/>"}, "a Word or PowerPoint file"),
        ({"xl/workbook.xml": b"<workbook/>"}, "a zip archive without xl/workbook.xml"),
    ],
    ids=["ods", "xlsb", "docx", "no-content-types"],
)
def test_zips_that_are_not_xlsx_workbooks_are_named(
    tmp_path: Path, parts: dict[str, bytes], why: str
) -> None:
    assert refused(tmp_path, zip_of(parts)) == f"roster.xlsx is not an xlsx workbook or CSV file ({why})."


# --- XML entities -----------------------------------------------------------------------------------------


def test_calamine_itself_never_expands_entities(tmp_path: Path) -> None:
    """What python-calamine does with a DTD (quick-xml underneath): entities are not expanded and
    external ones never read — the sheet fails to parse. Our check names the problem first."""
    for data in (laughs_workbook(tmp_path), external_entity_workbook(tmp_path)):
        with bounded(seconds=2, megabytes=20), pytest.raises(Exception) as caught:
            book = CalamineWorkbook.from_filelike(io.BytesIO(data))
            book.get_sheet_by_name("experts").to_python()
        assert "unrecognized entity" in str(caught.value)
        assert "lollol" not in str(caught.value) and "root:" not in str(caught.value)


@pytest.mark.parametrize("make", [laughs_workbook, external_entity_workbook], ids=["billion-laughs", "xxe"])
def test_a_workbook_declaring_xml_entities_is_refused_at_once(
    tmp_path: Path, catalog: None, make: object
) -> None:
    data = make(tmp_path)  # type: ignore[operator]
    with bounded(seconds=2, megabytes=20):
        message = refused(tmp_path, data)
    assert message == (
        "roster.xlsx is not a workbook we can open: its part xl/worksheets/sheet1.xml declares XML entities "
        "(a DTD), which spreadsheet programs never write and which can hide other files or explode in "
        "size. Save it again from your spreadsheet program."
    )
    assert not Expert.objects.exists()


def test_a_dtd_in_utf16_is_found_too(tmp_path: Path) -> None:
    data = good_workbook(tmp_path)
    sheet = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE w [<!ENTITY e "e">]><worksheet/>'
    message = refused(tmp_path, with_part(data, "xl/worksheets/sheet1.xml", sheet.encode("utf-16-le")))
    assert "its part xl/worksheets/sheet1.xml declares XML entities" in message


def test_openpyxl_would_refuse_entities_too_through_defusedxml(tmp_path: Path) -> None:
    """No upload is read with openpyxl (calamine reads them); should one ever be, defusedxml is
    installed and openpyxl uses it by itself."""
    from defusedxml import DTDForbidden, EntitiesForbidden
    from openpyxl.xml import DEFUSEDXML

    assert DEFUSEDXML is True
    path = tmp_path / "laughs.xlsx"
    path.write_bytes(laughs_workbook(tmp_path))
    with bounded(seconds=2, megabytes=30), pytest.raises(ValueError) as caught:
        openpyxl.load_workbook(path)
    assert isinstance(caught.value.__cause__ or caught.value.__context__, EntitiesForbidden | DTDForbidden)


# --- Zip bombs and lying headers ----------------------------------------------------------------------


def test_a_zip_bomb_is_refused_from_its_directory_in_bounded_memory(tmp_path: Path, catalog: None) -> None:
    data = bomb_with(tmp_path, "xl/worksheets/sheet1.xml", deflated_zeros(2048))  # 2 GB unpacked
    assert len(data) < 3 * MB
    with bounded(seconds=2, megabytes=3 * len(data) // MB + 10):
        message = refused(tmp_path, data)
    assert message.startswith("roster.xlsx is not a workbook we can open: its part xl/worksheets/sheet1.xml")
    assert "(2,048.0 MB from 2.0 MB); real sheets unpack at most 100 times." in message
    assert not Expert.objects.exists()


def test_a_workbook_unpacking_past_the_limit_is_refused(
    tmp_path: Path, settings: Settings, catalog: None
) -> None:
    settings.IMPORT_MAX_BYTES = 64 * 1024  # a file of at most 64 KB, unpacking to at most 1.25 MB
    data = good_workbook(tmp_path)
    for n in (1, 2):  # each part under the size from which its ratio counts
        data = with_part(data, f"xl/media/image{n}.png", bytes(900_000))
    assert len(data) < 64 * 1024
    message = refused(tmp_path, data)
    assert message.startswith("roster.xlsx unpacks to 1.7 MB")
    assert message.endswith("; an import takes at most 1.2 MB of sheets. Split it into several files.")


def test_a_part_unpacking_past_its_stated_size_is_refused_at_once(tmp_path: Path, catalog: None) -> None:
    """A header may lie: 1,000 bytes stated (and the checksum of those), 64 MB inside. Reading
    stops at the first byte past the stated size."""
    packed, _, _ = deflated_zeros(64)
    lie = (packed, zlib.crc32(bytes(1000)), 1000)
    data = bomb_with(tmp_path, "xl/worksheets/sheet2.xml", lie)
    with bounded(seconds=2, megabytes=10):
        message = refused(tmp_path, data)
    assert message == (
        "roster.xlsx is not a workbook we can open: its part xl/worksheets/sheet2.xml unpacks to more than "
        "the 1,000 bytes its header states. Save it again from your spreadsheet program."
    )


def test_a_part_shorter_than_stated_is_a_damaged_archive(tmp_path: Path) -> None:
    packed, crc, size = deflate(b"<sst/>")
    data = bomb_with(tmp_path, "xl/worksheets/sheet2.xml", (packed, crc, size + 10))
    assert refused(tmp_path, data) == (
        "roster.xlsx is not an xlsx workbook or CSV file (a damaged zip archive: xl/worksheets/sheet2.xml is "
        "not what its header states)."
    )


def test_a_zip_of_too_many_parts_is_refused_before_python_lists_them(tmp_path: Path) -> None:
    parts = {f"xl/media/{i}.bin": b"" for i in range(10_001)}
    data = zip_of({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>", **parts})
    assert refused(tmp_path, data) == (
        "roster.xlsx is not an xlsx workbook or CSV file (a zip archive of 10,003 parts; a workbook has "
        "a few dozen)."
    )


@pytest.mark.parametrize(
    ("page", "command"), [("import-roster", "import_roster"), ("import-incident", "import_incident")]
)
def test_the_pages_and_the_commands_refuse_a_bomb_and_write_nothing(
    tmp_path: Path, client: Client, catalog: None, page: str, command: str
) -> None:
    data = bomb_with(tmp_path, "xl/worksheets/sheet1.xml", deflated_zeros(2048))
    before = (Expert.objects.count(), Incident.objects.count())
    client.force_login(factories.UserFactory(username="root", is_staff=True, is_superuser=True))
    answer = client.post(reverse(page), {"file": SimpleUploadedFile("book.xlsx", data)})
    assert answer.status_code == 400
    assert "book.xlsx is not a workbook we can open: its part xl/worksheets/sheet1.xml would unpack" in (
        answer.content.decode()
    )
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)
    with pytest.raises(CommandError) as caught:
        call_command(command, str(path))
    assert caught.value.returncode == 2 and "bomb.xlsx is not a workbook we can open" in str(caught.value)
    assert (Expert.objects.count(), Incident.objects.count()) == before


def test_a_real_workbook_passes_the_checks_untouched(tmp_path: Path, catalog: None) -> None:
    """The checks refuse nothing real: an XlsxWriter workbook of 3,000 experts (ratio ~10 : 1)."""
    path = tmp_path / "roster.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("experts")
    sheet.write_row(0, 0, EXPERT_HEAD)
    for row in range(1, 3001):
        sheet.write_row(row, 0, expert(f"person{row}@example.org"))
    book.close()
    assert import_roster(path, dry_run=True).counts["experts"].created == 3000


# --- Formulas -------------------------------------------------------------------------------------------


def test_formula_cells_are_stored_as_their_value_never_as_formulas(tmp_path: Path, catalog: None) -> None:
    path = tmp_path / "roster.xlsx"
    book = xlsxwriter.Workbook(str(path))
    sheet = book.add_worksheet("experts")
    sheet.write_row(0, 0, EXPERT_HEAD)
    sheet.write_row(1, 0, expert())
    # What Excel shows in each cell is kept: a formula's last computed value.
    sheet.write_formula(1, 1, '=HYPERLINK("https://evil.example/","Ana")', None, "Ana")
    sheet.write_formula(1, 9, "=50+8.5", None, 58.5)
    # Text that looks like a formula is text: kept as typed, never run.
    sheet.write_string(1, 2, "=cmd|' /C calc'!A0")
    book.close()
    import_roster(path)
    ana = Expert.objects.get()
    assert (ana.first_name, str(ana.hourly_rate)) == ("Ana", "58.50")
    assert ana.last_name == "=cmd|' /C calc'!A0"
    # Every export makes such text inert (reports/writers.py).
    assert neutralise(ana.last_name) == "'=cmd|' /C calc'!A0"


def test_a_formula_without_a_computed_value_is_a_blank_cell(tmp_path: Path, catalog: None) -> None:
    """openpyxl saves formulas without a value: the import sees an empty cell, never the formula."""
    path = tmp_path / "roster.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "experts"
    sheet.append(EXPERT_HEAD)
    sheet.append(expert(first_name='=CONCAT("A","na")'))
    book.save(path)
    with pytest.raises(InvalidRows) as caught:
        import_roster(path)
    assert caught.value.lines == ["experts:2:first_name: first_name is required"]
    assert not Expert.objects.exists()


# --- Limits are settings ---------------------------------------------------------------------------------


def test_the_limits_come_from_the_environment() -> None:
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.IMPORT_MAX_BYTES, s.IMPORT_MAX_ROWS, s.FILE_UPLOAD_MAX_MEMORY_SIZE, "
        "s.DATA_UPLOAD_MAX_MEMORY_SIZE)"
    )
    defaults = run("-c", show, IMPORT_MAX_BYTES="", IMPORT_MAX_ROWS="")  # blank: the default
    assert defaults.stdout.split() == ["52428800", "200000", "2621440", "2621440"]
    changed = run("-c", show, IMPORT_MAX_BYTES="1048576", IMPORT_MAX_ROWS="5000")
    assert changed.stdout.split()[:2] == ["1048576", "5000"]
    bad = run("manage.py", "check", IMPORT_MAX_ROWS="lots")
    assert bad.returncode != 0 and "IMPORT_MAX_ROWS='lots' is not a whole number" in bad.stderr


def test_the_page_states_the_limits_in_force(client: Client, settings: Settings) -> None:
    settings.IMPORT_MAX_BYTES = 5 * MB
    settings.IMPORT_MAX_ROWS = 1234
    admin = User.objects.create_user("admin2", is_staff=True)
    client.force_login(admin)
    page = client.get(reverse("import-roster")).content.decode()
    assert "5.0 MB" in page and "1,234" in page
