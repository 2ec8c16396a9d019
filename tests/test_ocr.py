"""Scanned documents: pages without a text layer, and images, read by Tesseract.

Every scan is made here (tests/scans.py: text drawn with a real font at 300 dpi), read by
the real `tesseract` program, through the real parser processes and the real store."""

from __future__ import annotations

import json

import psutil
import pytest

from ingest.ocr import OcrOptions
from ingest.parse import ParseError, parse_file
from rag.types import OCR_NOTE, Passage, SearchHit
from tests.cli_process import citadel
from tests.conftest import SAMPLES
from tests.docgen import write_pdf
from tests.fake_ollama import FakeOllama, Script
from tests.live_server import LiveServer, add_user, server_settings, upload_and_wait, workspace_with
from tests.scans import (
    merged_pdf,
    scanned_page,
    with_picture,
    write_image,
    write_pixel_bomb,
    write_scanned_pdf,
)

OCR = OcrOptions("eng+fra", 40.0)

ENGLISH = [
    "Fire drill procedure",
    "When the alarm sounds, leave the building by the",
    "nearest stairs and gather at the blue gate of car park C.",
]
FRENCH = [
    "Procédure de sécurité",
    "Le comité se réunit à Genève chaque été. Les employés",
    "reçoivent leur badge à l'accueil; ça évite les files",
    "d'attente. Très pratique, déjà appliqué partout.",
]
TEXT_PAGE = [
    "## Visitor policy",
    "Visitors sign the register at reception and wear a badge at all times.",
]


def _text(elements) -> str:
    return " ".join(e.text for e in elements)


def test_scanned_pdf_pages_are_read_in_english_and_french_with_their_accents(tmp_path):
    pdf = write_scanned_pdf(tmp_path / "scan.pdf", [scanned_page(ENGLISH), scanned_page(FRENCH)])

    elements = parse_file(str(pdf), "pdf", OCR)

    assert all(e.ocr for e in elements)
    english = _text(e for e in elements if e.page == 1)
    french = _text(e for e in elements if e.page == 2)
    assert "gather at the blue gate of car park C." in english
    for words in ("à Genève chaque été", "reçoivent leur badge", "ça évite", "Très pratique"):
        assert words in french, french
    assert "déjà appliqué" in french


def test_a_mixed_pdf_reads_only_its_scanned_page_and_each_chunk_keeps_its_page(
    make_pipeline, store, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    text = write_pdf(tmp_path / "text.pdf", [TEXT_PAGE])
    scan = write_scanned_pdf(tmp_path / "scan.pdf", [scanned_page(ENGLISH)])
    merged_pdf(folder / "mixed.pdf", [text, scan])

    report = make_pipeline().run([folder], "docs")

    assert [(f.source, f.status) for f in report.files] == [("mixed.pdf", "added")]
    chunks = [h.payload for h in store.chunks("docs")]
    by_page = {tuple(c["pages"]): c for c in chunks}
    assert set(by_page) == {(1,), (2,)}
    assert "ocr" not in by_page[(1,)]  # the text layer is read as it is, never by OCR
    assert "wear a badge at all times" in by_page[(1,)]["text"]
    assert by_page[(2,)]["ocr"] is True
    assert "blue gate of car park C" in by_page[(2,)]["text"]
    cited = Passage.from_hit(SearchHit("id", 1.0, by_page[(2,)]), 1.0)
    assert cited.page == 2 and cited.where == f"mixed.pdf, page 2 ({OCR_NOTE})"


@pytest.mark.parametrize(("name", "image_format"), [("scan.png", "PNG"), ("scan.jpg", "JPEG")])
def test_png_and_jpeg_images_are_read(tmp_path, name, image_format):
    image = write_image(tmp_path / name, [scanned_page(FRENCH)], image_format)

    elements = parse_file(str(image), "png" if image_format == "PNG" else "jpeg", OCR)

    assert {e.page for e in elements} == {1} and all(e.ocr for e in elements)
    assert "reçoivent leur badge à l'accueil" in _text(elements)


def test_each_page_of_a_tiff_is_a_page(tmp_path):
    tiff = write_image(tmp_path / "scan.tif", [scanned_page(ENGLISH), scanned_page(FRENCH)], "TIFF")

    elements = parse_file(str(tiff), "tiff", OCR)

    assert "car park C" in _text(e for e in elements if e.page == 1)
    assert "à Genève" in _text(e for e in elements if e.page == 2)


def test_a_scan_with_nothing_readable_still_fails_clearly(tmp_path):
    blank = write_scanned_pdf(tmp_path / "blank.pdf", [scanned_page([])])
    with pytest.raises(ParseError, match=r"no text layer in its 1 page.*OCR found no text"):
        parse_file(str(blank), "pdf", OCR)
    with pytest.raises(ParseError, match="OCR is turned off"):
        parse_file(str(blank), "pdf", None)
    photo = write_image(tmp_path / "blank.png", [scanned_page([])], "PNG")
    with pytest.raises(ParseError, match="OCR found no text in this image"):
        parse_file(str(photo), "png", OCR)


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tmp_path):
    image = write_image(tmp_path / "poster.png", [scanned_page(ENGLISH)], "PNG")

    with pytest.raises(ParseError, match=r"2480×3508 pixels \(9 megapixels\), over the 2-mega"):
        parse_file(str(image), "png", OcrOptions("eng", 2.0))


def test_image_bombs_fail_with_the_limit_named_and_the_run_goes_on(make_pipeline, store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_pixel_bomb(folder / "poster.png", 8000, 8000)  # over the 40-megapixel default
    write_pixel_bomb(folder / "bomb.png", 30000, 30000)  # 900 MB decoded: past Pillow's cap too
    (folder / "fine.md").write_text("# Fine\n\nStill ingested.\n", encoding="utf-8")

    report = make_pipeline().run([folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    assert outcomes["fine.md"] == ("added", "")
    for name in ("poster.png", "bomb.png"):
        status, reason = outcomes[name]
        assert status == "failed" and "40-megapixel OCR limit" in reason, reason
        assert "CITADEL_INGEST__OCR_MAX_MEGAPIXELS" in reason


def test_content_that_is_not_the_image_its_name_says_is_refused(make_pipeline, store, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "scan.tiff").write_bytes(b"%PDF-1.4 not a TIFF")

    [outcome] = make_pipeline().run([folder], "docs").files

    assert (outcome.status, outcome.reason) == ("failed", "content is not a TIFF image")


def test_unknown_languages_are_a_clear_error(tmp_path):
    image = write_image(tmp_path / "scan.png", [scanned_page(ENGLISH)], "PNG")
    with pytest.raises(ParseError, match=r"OCR languages .eng\+xyz. are not all installed"):
        parse_file(str(image), "png", OcrOptions("eng+xyz", 40.0))


def test_ocr_stops_at_the_file_time_limit_and_leaves_no_tesseract_running(
    make_pipeline, store, tmp_path
):
    folder = tmp_path / "in"
    folder.mkdir()
    write_scanned_pdf(folder / "a-long-scan.pdf", [scanned_page(ENGLISH * 12)] * 12)
    (folder / "b-fine.md").write_text("# Fine\n\nStill ingested.\n", encoding="utf-8")

    report = make_pipeline(parse_timeout_s=2.0).run([folder], "docs")

    outcomes = {f.source: (f.status, f.reason) for f in report.files}
    assert outcomes["b-fine.md"] == ("added", "")
    status, reason = outcomes["a-long-scan.pdf"]
    assert status == "failed" and "time limit" in reason, reason
    running = [p for p in psutil.Process().children(recursive=True) if p.name() == "tesseract"]
    assert running == []


def test_a_scanned_passage_is_found_and_cited_as_ocr_through_the_cli(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    text = write_pdf(tmp_path / "text.pdf", [TEXT_PAGE])
    scan = write_scanned_pdf(tmp_path / "scan.pdf", [scanned_page(FRENCH)])
    merged_pdf(folder / "securite.pdf", [text, scan])
    write_image(folder / "drill.png", [scanned_page(ENGLISH)], "PNG")
    data = tmp_path / "data"

    ingested = citadel(data, "ingest", str(folder), "--collection", "hr", "--json")
    assert ingested.returncode == 0, ingested.stderr
    assert json.loads(ingested.stdout)["counts"]["added"] == 2

    question = "Où les employés reçoivent-ils leur badge ?"
    found = citadel(data, "search", question, "-c", "hr", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["passages"][0]
    assert top["source"] == "securite.pdf" and top["page"] == 2 and top["ocr"] is True
    assert "reçoivent leur badge" in top["text"]
    shown = citadel(data, "search", "Where do we gather when the fire alarm sounds?", "-c", "hr")
    assert f"drill.png, page 1 ({OCR_NOTE})" in shown.stdout


@pytest.fixture(scope="module")
def fake_llm():
    with FakeOllama() as server:
        yield server


def test_over_http_a_scan_is_cited_with_ocr_for_its_team_and_hidden_from_others(
    tmp_path, embedder, fake_llm
):
    settings = server_settings(tmp_path / "server", llm_host=fake_llm.url)
    workspace = workspace_with(settings, embedder)
    alice = add_user(workspace, "alice", ("hr",))
    bob = add_user(workspace, "bob", ("eng",))
    workspace.catalog.assign("hr-docs", "hr")
    workspace.catalog.assign("eng-docs", "eng")
    text = write_pdf(tmp_path / "text.pdf", [TEXT_PAGE])
    scan = write_scanned_pdf(tmp_path / "scan.pdf", [scanned_page(FRENCH)])
    mixed = merged_pdf(tmp_path / "securite.pdf", [text, scan])
    upload_and_wait(workspace, "alice", "hr-docs", [SAMPLES / "handbook.md", mixed])
    upload_and_wait(workspace, "bob", "eng-docs", [SAMPLES / "offices.csv"])
    question = "Où les employés reçoivent-ils leur badge ?"
    fake_llm.enqueue(Script(tokens=["À l'accueil [1]."]))

    with LiveServer(workspace) as live, live.client(alice) as http:
        found = http.post("/api/search", json={"question": question}).json()["passages"][0]
        answer = http.post("/api/ask", json={"question": question}).json()
        fake_llm.enqueue(Script(tokens=["À l'accueil [1]."]))
        completion = http.post(
            "/v1/chat/completions",
            json={"model": "citadel", "messages": [{"role": "user", "content": question}]},
        ).json()
        with live.client(bob) as other:
            hidden = other.post("/api/search", json={"question": question})
            forced = other.post(
                "/api/search", json={"question": question, "collections": ["hr-docs"]}
            )
    workspace.close()

    assert (found["source"], found["page"], found["ocr"]) == ("securite.pdf", 2, True)
    (citation,) = answer["citations"]
    assert (citation["source"], citation["page"], citation["ocr"]) == ("securite.pdf", 2, True)
    assert "reçoivent leur badge" in citation["text"]
    (source,) = completion["citadel"]["sources"]
    assert source["ocr"] is True and source["page"] == 2
    content = completion["choices"][0]["message"]["content"]
    assert f"securite.pdf, page 2 ({OCR_NOTE})" in content
    # bob's team has no access to hr-docs: the scan is neither found nor reachable by name.
    assert hidden.status_code == 200
    assert all(p["source"] != "securite.pdf" for p in hidden.json()["passages"])
    assert forced.status_code in (403, 404), forced.text


def test_a_picture_on_a_scanned_page_is_not_read_as_a_paragraph_of_letters(tmp_path):
    lines = ["Visitors sign the register at reception.", "Badges are worn at all times on site."]
    page = with_picture(scanned_page(lines, (2480, 2000)))
    image = write_image(tmp_path / "page.png", [page], "PNG")

    texts = [e.text for e in parse_file(str(image), "png", OCR)]

    assert texts[:2] == lines
    # What Tesseract made of the picture, and doubted (confidence under 40), is dropped.
    read = " ".join(texts)
    assert not {"CALE", "Dak", "tos", "Sek", "taf"} & set(read.split()), read
