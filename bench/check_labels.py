"""Check a labelled question set against the corpus it was written for.

    python -m bench.check_labels CORPUS QA.jsonl [--others]

For every answerable question: each file in `sources` exists and holds at least one of
`answers` (multi questions: at least one source does, since each holds a part); when `page`
is set, one of `answers` is on that page of the PDF source (text from `pdftotext -f N -l N`).
Unanswerable questions must have no answers, no sources and no page. Text is compared
case-insensitively with runs of whitespace collapsed; HTML is read without its tags, DOCX
paragraphs and tables with python-docx. `--others` also lists, per question, the other
corpus files that hold one of its answers (candidates for a missing source: read them) and
the other pages of its PDF source that do (the `page` is the one that states the answer).
Prints one line per problem and a summary; exits 1 when there is a problem.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

from rag import evaluation

_TAG = re.compile(r"<[^>]+>")
_DROP = re.compile(r"<(script|style)\b.*?</\1>", re.S | re.I)
_SPACE = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


def _html_texts(path: Path) -> list[str]:
    raw = _DROP.sub(" ", path.read_text(encoding="utf-8", errors="replace"))
    # Tags removed two ways: inline markup glued (code split into <span>s reads as
    # written) and every tag a space (words of adjacent blocks kept apart).
    return [_norm(html.unescape(_TAG.sub(sep, raw))) for sep in ("", " ")]


def _docx_text(path: Path) -> str:
    import docx  # python-docx, installed with unstructured

    document = docx.Document(str(path))
    parts = [p.text for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            parts.extend(cell.text for cell in row.cells)
    return _norm("\n".join(parts))


@cache
def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found: install poppler-utils")
    return found


@cache
def _pdf_pages(path: Path) -> int:
    out = subprocess.run([_tool("pdfinfo"), str(path)], capture_output=True, text=True, check=True)
    match = re.search(r"^Pages:\s+(\d+)", out.stdout, re.M)
    return int(match.group(1)) if match else 0


@cache
def pdf_page_text(path: Path, page: int) -> str:
    out = subprocess.run(
        [_tool("pdftotext"), "-f", str(page), "-l", str(page), str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    )
    return _norm(out.stdout)


@cache
def texts(path: Path) -> tuple[str, ...]:
    suffix = path.suffix.lower()
    if suffix in (".html", ".htm"):
        return tuple(_html_texts(path))
    if suffix == ".docx":
        return (_docx_text(path),)
    if suffix == ".pdf":
        return (" ".join(pdf_page_text(path, n) for n in range(1, _pdf_pages(path) + 1)),)
    return (_norm(path.read_text(encoding="utf-8", errors="replace")),)


def holds(path: Path, answers: tuple[str, ...]) -> bool:
    wanted = [_norm(a) for a in answers]
    return any(w in t for t in texts(path) for w in wanted)


def corpus_files(corpus: Path) -> list[Path]:
    return sorted(
        p
        for p in corpus.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(corpus).parts)
        and p.suffix.lower() in (".html", ".htm", ".pdf", ".docx", ".txt", ".md")
    )


def check(corpus: Path, item: evaluation.QaItem) -> list[str]:
    problems: list[str] = []
    if not item.answerable:
        if item.answers or item.pages or item.kind != "unanswerable":
            problems.append("no sources, but answers, a page or a kind other than unanswerable")
        return problems
    if not item.answers:
        problems.append("answerable but no answers")
        return problems
    holding = []
    for source in item.sources:
        path = corpus / source
        if not path.is_file():
            problems.append(f"missing source {source}")
            continue
        if holds(path, item.answers):
            holding.append(source)
        elif item.kind != "multi":
            problems.append(f"{source} holds none of the answers")
    if item.kind == "multi" and not holding:
        problems.append("no source holds any of the answers")
    pdfs = [s for s in item.sources if s.lower().endswith(".pdf")]
    if len(pdfs) > 1:
        problems.append("more than one PDF source")
    if pdfs and (corpus / pdfs[0]).is_file():
        if not item.pages:
            problems.append(f"PDF source {pdfs[0]} but no page")
        path = corpus / pdfs[0]
        for page in item.pages:
            if page > _pdf_pages(path):
                problems.append(f"page {page} beyond the end of {pdfs[0]}")
            elif not any(_norm(a) in pdf_page_text(path, page) for a in item.answers) and (
                item.kind != "multi" or pdfs[0] in holding
            ):
                problems.append(f"none of the answers on page {page} of {pdfs[0]}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.check_labels")
    parser.add_argument("corpus", type=Path)
    parser.add_argument("qa", type=Path)
    parser.add_argument("--others", action="store_true", help="list other files holding an answer")
    args = parser.parse_args()
    items = evaluation.load_questions(args.qa)
    files = corpus_files(args.corpus) if args.others else []
    bad = 0
    for item in items:
        problems = check(args.corpus, item)
        for problem in problems:
            print(f"{item.id}: {problem}")
        bad += bool(problems)
        if args.others and item.pages:
            pdf = args.corpus / next(s for s in item.sources if s.lower().endswith(".pdf"))
            pages = [
                n
                for n in range(1, _pdf_pages(pdf) + 1)
                if n not in item.pages
                and any(_norm(a) in pdf_page_text(pdf, n) for a in item.answers)
            ]
            if pages:
                print(f"{item.id}: answers also on page(s) {', '.join(map(str, pages))}")
        if args.others and item.answers:
            others = [
                str(p.relative_to(args.corpus))
                for p in files
                if str(p.relative_to(args.corpus)) not in item.sources and holds(p, item.answers)
            ]
            if others:
                print(f"{item.id}: also in {len(others)}: {' '.join(others[:12])}")
    print(f"{args.qa}: {len(items)} questions, {bad} with problems")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
