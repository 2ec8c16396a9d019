"""The `citadel` command as a consultant scripts it: JSON on stdout, exit codes, clear errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rag.settings import Settings
from tests.cli_process import citadel

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """The samples ingested once through the CLI; later tests read from it."""
    base = tmp_path_factory.mktemp("cli")
    docs, data = base / "docs", base / "data"
    shutil.copytree(REPO / "samples", docs)
    result = citadel(data, "ingest", str(docs), "--collection", "hr", "--json")
    assert result.returncode == 0, result.stderr
    return docs, data, json.loads(result.stdout)


def test_ingest_json_reports_every_file_and_the_totals(ingested):
    _, _, report = ingested
    assert report["collection"] == "hr"
    assert report["counts"] == {
        "added": 8,
        "updated": 0,
        "unchanged": 0,
        "removed": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert report["truncated_chunks"] == 0
    assert report["chunks_written"] == sum(f["chunks"] for f in report["files"]) > 8
    assert {"source", "status", "file_type", "chunks", "pages", "reason"} <= set(report["files"][0])
    assert set(report["stage_seconds"]) == {
        "discover",
        "parse_wait",
        "parse_cpu",
        "chunk",
        "embed",
        "store",
        "optimize",
        "calibrate",
    }


def test_documents_and_collections_list_what_is_indexed(ingested):
    _, data, report = ingested
    docs = json.loads(citadel(data, "documents", "--collection", "hr", "--json").stdout)
    by_source = {d["source"]: d for d in docs["documents"]}
    pdf = by_source["policies/information-security-policy.pdf"]
    assert (pdf["file_type"], pdf["pages"]) == ("pdf", 3)
    assert len(pdf["sha256"]) == 64 and pdf["ingested_at"].endswith("+00:00")
    assert {
        "id",
        "source",
        "file_type",
        "title",
        "pages",
        "chunks",
        "sha256",
        "size",
        "ingested_at",
        "root",
        "collection",
        "chunking",
        "sparse",
    } == set(pdf)

    collections = json.loads(citadel(data, "collections", "--json").stdout)["collections"]
    assert collections == [
        {
            "name": "hr",
            "documents": 8,
            "chunks": report["chunks_written"],
            "embedding_model": "multilingual-e5-small",
            "dimension": 384,
        }
    ]

    table = citadel(data, "documents", "--collection", "hr")
    assert "information-security-policy.pdf" in table.stdout


def test_remove_by_source_path_deletes_the_document(ingested, tmp_path):
    docs, data, _ = ingested
    copy = tmp_path / "data"
    shutil.copytree(data, copy)

    removed = citadel(copy, "remove", "offices.csv", "--collection", "hr", "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["removed"][0]["source"] == "offices.csv"
    again = citadel(copy, "remove", str(docs / "handbook.md"), "--collection", "hr")
    assert again.returncode == 0 and "removed handbook.md" in again.stdout
    left = json.loads(citadel(copy, "documents", "--collection", "hr", "--json").stdout)
    assert {d["source"] for d in left["documents"]} == {
        s
        for s in (
            f["source"]
            for f in json.loads(citadel(data, "documents", "--collection", "hr", "--json").stdout)[
                "documents"
            ]
        )
        if s not in {"offices.csv", "handbook.md"}
    }

    deleted = [e.detail["source"] for e in audit_entries(copy) if e.action == "delete"]
    assert deleted == ["handbook.md", "offices.csv"]  # newest first, as cli:<os user>

    missing = citadel(copy, "remove", "nope.pdf", "--collection", "hr")
    assert missing.returncode == 2
    assert "no document in 'hr' matches 'nope.pdf'" in missing.stderr


def test_sync_mirrors_the_folder_and_is_quiet_when_nothing_changed(ingested, tmp_path):
    docs, data, _ = ingested
    folder, copy = tmp_path / "docs", tmp_path / "data"
    shutil.copytree(docs, folder)
    shutil.copytree(data, copy)
    (folder / "offices.csv").unlink()

    result = citadel(copy, "sync", str(folder), "--collection", "hr", "--json")

    counts = json.loads(result.stdout)["counts"]
    # Same relative paths from another folder: unchanged, not re-ingested.
    assert counts["unchanged"] == 7 and counts["removed"] == 1 and counts["added"] == 0


def test_bad_input_gets_a_clear_error_and_exit_code_2(tmp_path):
    missing = citadel(tmp_path, "ingest", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no such file or folder" in missing.stderr
    assert "Traceback" not in missing.stderr

    bad_env = citadel(tmp_path, "collections", env={"CITADEL_INGEST__MAX_FILE_MB": "-3"})
    assert bad_env.returncode == 2 and "invalid settings" in bad_env.stderr

    bad_name = citadel(tmp_path, "documents", "--collection", "Bad Name!")
    assert bad_name.returncode == 2 and "invalid collection name" in bad_name.stderr

    unknown = citadel(tmp_path, "documents", "--collection", "ghost")
    assert unknown.returncode == 2 and "no collection named 'ghost'" in unknown.stderr


def test_a_nearly_full_disk_stops_ingestion_with_a_clear_error_and_a_rerun_completes_it(
    tmp_path: Path,
) -> None:
    """The store writes through mapped memory: on a full disk that kills the process with no
    word. Below its free-space floor it refuses to write instead, and says what to do; what
    it had stored stays, and the next run adds what is missing."""
    docs, data = tmp_path / "docs", tmp_path / "data"
    shutil.copytree(REPO / "samples", docs)
    first = citadel(data, "ingest", str(docs), "--collection", "hr", "--json")
    assert first.returncode == 0, first.stderr
    (docs / "new-policy.md").write_text(
        "# Parking\n\nEach employee may book one parking space per day through the app.\n",
        encoding="utf-8",
    )
    free_mb = shutil.disk_usage(tmp_path).free // 2**20
    floor = {"CITADEL_QDRANT__MIN_FREE_MB": str(free_mb + 10_000)}
    full = citadel(data, "ingest", str(docs), "--collection", "hr", env=floor)
    assert full.returncode == 2
    assert "Traceback" not in full.stderr
    assert "MB free" in full.stderr and "Free some space" in full.stderr
    listed = citadel(data, "documents", "--collection", "hr", "--json")
    assert "new-policy.md" not in listed.stdout  # its record is written last: not half-stored
    again = citadel(data, "ingest", str(docs), "--collection", "hr", "--json")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["counts"]["added"] == 1 and report["counts"]["unchanged"] == 8
    found = citadel(data, "search", "How many parking spaces may I book?", "-c", "hr")
    assert "new-policy.md" in found.stdout


def test_failed_files_make_the_exit_code_1_and_are_explained(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.pdf").write_bytes(b"")
    (folder / "ok.md").write_text("# Ok\n\nFine.\n", encoding="utf-8")

    result = citadel(tmp_path / "data", "ingest", str(folder))

    assert result.returncode == 1
    assert "1 added" in result.stdout and "1 failed" in result.stdout
    assert "empty file (0 bytes)" in result.stdout
    # The web UI's library lists it too, and the audit log says who ingested what.
    assert failures_and_audit(tmp_path / "data", "default") == (
        [("empty.pdf", "empty file (0 bytes)")],
        [("ingest", {"added": 1, "failed": 1})],
    )
    (folder / "empty.pdf").unlink()
    (folder / "empty.md").write_text("# Not empty\n\nAny more.\n", encoding="utf-8")
    assert citadel(tmp_path / "data", "sync", str(folder), "-q").returncode == 0
    failures, audited = failures_and_audit(tmp_path / "data", "default")
    assert failures == []  # the file is gone from the folder the collection mirrors
    assert audited[0] == ("ingest", {"added": 1, "unchanged": 1})


def audit_entries(data: Path) -> list:
    """The audit log's entries written by the command line, newest first."""
    from ui.metadata import Metadata

    meta = Metadata.open(Settings(data_dir=data))
    try:
        return [e for e in meta.audit.entries(100) if e.actor.startswith("cli:")]
    finally:
        meta.close()


def failures_and_audit(data: Path, collection: str) -> tuple[list, list]:
    """What the server would show: the collection's failures, and the CLI's audit entries
    (newest first) with the counts they recorded."""
    from ui.metadata import Metadata

    meta = Metadata.open(Settings(data_dir=data))
    try:
        failures = [(f["source"], f["reason"]) for f in meta.failures.of(collection)]
        entries = [
            (e.action, {k: n for k, n in e.detail["counts"].items() if n})
            for e in meta.audit.entries(10)
            if e.actor.startswith("cli:") and e.collection == collection
        ]
    finally:
        meta.close()
    return failures, entries


def test_yaml_settings_file_is_read_and_the_environment_wins(tmp_path):
    config = tmp_path / "citadel.yaml"
    config.write_text(f"data_dir: {tmp_path / 'from-yaml'}\n", encoding="utf-8")
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\nText.\n", encoding="utf-8")

    result = subprocess.run(
        [sys.executable, "-m", "ui", "--config", str(config), "ingest", str(folder), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")},
    )

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "from-yaml" / "qdrant-edge" / "default").is_dir()


def test_terminal_gets_a_live_progress_display_with_names_shown_literally(tmp_path):
    import pty

    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md").write_text("# A\n\n" + "Some text. " * 300, encoding="utf-8")
    (folder / "[bold]evil[red].md").write_bytes(b"")  # a name that looks like rich markup
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ui", "--data-dir", str(tmp_path / "data"), "ingest", str(folder)],
        stdout=subprocess.PIPE,
        stderr=follower,
        env={**env, "COLUMNS": "160"},
        cwd=REPO,
    )
    os.close(follower)
    screen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        screen += data
    summary = process.communicate(timeout=600)[0].decode()
    text = screen.decode("utf-8", "replace")

    assert "ingesting" in text and "chunks/s" in text and "ETA" in text
    assert "1/1" in text  # the bar reached the end
    # The summary (stdout, piped) names the refused file literally, markup and all.
    assert "[bold]evil[red].md" in summary and "empty file (0 bytes)" in summary


def test_search_ranks_passages_with_their_location(ingested) -> None:
    _, data, _ = ingested

    result = citadel(
        data, "search", "How fast must a lost laptop be reported?", "-c", "hr", "--json"
    )

    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    best = found["passages"][0]
    assert best["source"] == "policies/information-security-policy.pdf"
    assert best["location"] == "page 2" and best["pages"] == [2]
    assert "within one hour" in best["text"]
    assert found["weak_evidence"] is False


def test_ask_without_a_model_server_answers_in_search_mode(ingested) -> None:
    _, data, _ = ingested
    closed_port = {"CITADEL_LLM__HOST": "http://127.0.0.1:9"}

    result = citadel(
        data, "ask", "How many days of annual leave do I get?", "-c", "hr", env=closed_port
    )
    unanswerable = citadel(
        data, "ask", "Which zpool command creates a mirrored ZFS pool?", "-c", "hr", env=closed_port
    )

    assert result.returncode == 0, result.stderr
    assert "Search mode: No Ollama server answers at http://127.0.0.1:9" in result.stderr
    assert "[1] handbook.md" in result.stdout and "25 days" in result.stdout
    assert "Traceback" not in result.stderr
    assert unanswerable.returncode == 0
    assert "I could not find this in your documents." in unanswerable.stdout
    assert "Closest documents" in unanswerable.stdout


# Three labelled questions on the samples: one answered by the handbook, one by a PDF page,
# one the samples do not answer. An unknown field must be ignored.
QUESTIONS = [
    {
        "id": "q1",
        "question": "How many days of paid annual leave do employees get?",
        "answers": ["25 days"],
        "sources": ["handbook.md"],
        "page": None,
        "kind": "numeric",
        "note": "unknown fields are ignored",
    },
    {
        "id": "q2",
        "question": "How soon must a lost laptop be reported?",
        "answers": ["one hour"],
        "sources": ["policies/information-security-policy.pdf"],
        "page": 2,
        "kind": "fact",
    },
    {
        "id": "q3",
        "question": "Which zpool command creates a mirrored ZFS pool?",
        "answers": [],
        "sources": [],
        "page": None,
        "kind": "unanswerable",
    },
]


def _question_set(folder: Path) -> Path:
    path = folder / "qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in QUESTIONS) + "\n", encoding="utf-8")
    return path


def _eval_json(
    data: Path, qa: Path, root: Path, out: Path, *flags: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`citadel eval` of the samples collection, figures as JSON, lines written to `out`."""
    return citadel(
        data,
        "eval",
        str(qa),
        "--root",
        str(root),
        "-c",
        "hr",
        "--out",
        str(out),
        "--json",
        *flags,
        env=env,
    )


def test_eval_scores_a_question_set_and_writes_results(ingested, tmp_path: Path) -> None:
    docs, data, _ = ingested
    qa = _question_set(tmp_path)
    out = tmp_path / "results.jsonl"

    result = _eval_json(data, qa, docs, out, "--no-generate")

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["overall"]
    assert figures["hit@1"] == 1.0 and figures["page_accuracy"] == 1.0
    assert figures["refusal_recall"] == 1.0 and figures["false_refusals"] == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["q1", "q2", "q3"]
    assert lines[0]["retrieved"][0]["source"] == "handbook.md"
    assert len(lines[0]["retrieved"]) >= 10 or len(lines[0]["retrieved"]) == 27
    assert lines[1]["retrieved"][0]["pages"] == [2]
    assert lines[2]["refused"] is True and "answer" not in lines[2]
    assert all(line["latency_ms"] > 0 for line in lines)


def test_eval_refuses_a_root_that_was_not_ingested(ingested, tmp_path: Path) -> None:
    _, data, _ = ingested
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"id": "x", "question": "q?", "sources": ["a.md"]}\n', encoding="utf-8")

    result = citadel(data, "eval", str(qa), "--root", str(tmp_path), "-c", "hr", "--no-generate")
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"id": "x"}\nnot json\n', encoding="utf-8")
    invalid = citadel(data, "eval", str(broken), "--root", str(tmp_path), "-c", "hr")

    assert result.returncode == 2
    assert "citadel ingest" in result.stderr
    assert invalid.returncode == 2
    assert "broken.jsonl:1" in invalid.stderr and "Traceback" not in invalid.stderr


def test_chat_keeps_the_conversation_for_follow_up_questions(ingested) -> None:
    _, data, _ = ingested
    result = citadel(
        data,
        "chat",
        "-c",
        "hr",
        env={"CITADEL_LLM__HOST": "http://127.0.0.1:9"},  # no model: search mode, no rewrite
        stdin="How many days of annual leave do employees get?\nand how many carry over?\n",
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("you> ") == 3  # two questions, then the end of input
    # The follow-up alone would not find the leave rules; with the history it does.
    second = result.stdout.split("you> ")[2]
    assert "handbook.md" in second and "carried over" in second
    assert result.stderr.count("Search mode") == 2


def test_eval_with_a_model_measures_the_answers(ingested, tmp_path: Path) -> None:
    from tests.fake_ollama import FakeOllama, Script

    docs, data, _ = ingested
    qa = _question_set(tmp_path)
    out = tmp_path / "results.jsonl"

    with FakeOllama() as server:
        server.enqueue(Script(tokens=["Employees get ", "25 days ", "of leave [1]."]))
        server.enqueue(Script(tokens=["Report it ", "to your manager [1]."]))
        result = _eval_json(data, qa, docs, out, env={"CITADEL_LLM__HOST": server.url})
        chat_requests = len(server.requests)

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["overall"]
    assert figures["answer_contains"] == 0.5
    assert figures["refusal_recall"] == 1.0
    assert chat_requests == 2  # the unanswerable question never reached the model
    lines = {json.loads(x)["id"]: json.loads(x) for x in out.read_text().splitlines()}
    assert lines["q1"]["answer"] == "Employees get 25 days of leave [1]."
    assert lines["q3"]["refused"] is True


def test_eval_refuses_a_model_it_cannot_use_before_running_anything(
    ingested, tmp_path: Path
) -> None:
    from tests.fake_ollama import FakeOllama

    docs, data, _ = ingested
    qa = _question_set(tmp_path)
    out = tmp_path / "results.jsonl"
    unnamed = _eval_json(data, qa, docs, out, "--model", "llama3.1:8b")
    with FakeOllama({"a": 8192}) as server:
        missing = _eval_json(
            data,
            qa,
            docs,
            out,
            "--model",
            "ollama:a",
            "--model",
            "ollama:nope",
            env={"CITADEL_LLM__HOST": server.url},
        )
        chats = [r for r in server.requests if r.get("messages")]

    assert unnamed.returncode == 2 and "ollama:NAME, openai:NAME" in unnamed.stderr
    assert missing.returncode == 2 and "ollama pull nope" in missing.stderr
    assert chats == [] and out.read_text(encoding="utf-8") == ""
    assert "Traceback" not in unnamed.stderr + missing.stderr


def test_eval_with_a_named_model_translates_as_ask_would(ingested, tmp_path: Path) -> None:
    """No model configured, one named by --model: a French question over the English
    handbook is translated by that model before it is searched, as `ask` with that model
    would, so the figures are those users get."""
    from tests.fake_ollama import FakeOllama, Script

    docs, data, _ = ingested
    qa = tmp_path / "fr.jsonl"
    french = {**QUESTIONS[0], "id": "fr1"}
    french["question"] = "Combien de jours de congés payés ont les salariés ?"
    qa.write_text(json.dumps(french) + "\n", encoding="utf-8")
    out = tmp_path / "results.jsonl"
    with FakeOllama({"a": 8192}) as server:
        server.enqueue(Script(tokens=["How many days of paid leave do employees get?"]))
        server.enqueue(Script(tokens=["Les salariés ont 25 jours de congés [1]."]))
        result = _eval_json(
            data, qa, docs, out, "--model", "ollama:a", env={"CITADEL_LLM__HOST": server.url}
        )
        chats = [r for r in server.requests if r.get("messages")]

    assert result.returncode == 0, result.stderr
    assert len(chats) == 2
    assert "into English" in chats[0]["messages"][0]["content"]
    assert chats[1]["messages"][1]["content"].endswith(
        f"<question>\n{french['question']}\n</question>"
    )


SMOLLM2 = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
HOSTILE = '<i id="pwned">x</i>'


def test_eval_writes_each_result_line_as_soon_as_it_is_done(ingested, tmp_path: Path) -> None:
    from tests.fake_ollama import FakeOllama, Script

    docs, data, _ = ingested
    qa = _question_set(tmp_path)
    out = tmp_path / "results.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
    with FakeOllama() as server:
        server.enqueue(Script(tokens=["Employees get ", "25 days [1]."]))
        server.enqueue(Script(tokens=["Within one hour [1]."], delay_before_first_s=5))
        env["CITADEL_LLM__HOST"] = server.url
        command = [sys.executable, "-m", "ui", "--data-dir", str(data), "eval", str(qa)]
        command += ["--root", str(docs), "-c", "hr", "--out", str(out)]
        with subprocess.Popen(
            command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            while len([r for r in server.requests if r.get("messages")]) < 2:
                assert process.poll() is None, process.communicate()
                time.sleep(0.05)
            # the second answer is being written: the first question's line is on disk
            written = out.read_text(encoding="utf-8").splitlines()
            _, stderr = process.communicate(timeout=300)

    assert process.returncode == 0, stderr
    assert [json.loads(line)["id"] for line in written] == ["q1"]
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    # progress on every question, though stderr is not a terminal
    progress = [line for line in stderr.splitlines() if "/3 q" in line]
    assert [line.split()[0] for line in progress] == ["1/3", "2/3", "3/3"]
    assert "left" in progress[0] and "elapsed" in progress[0]


def test_eval_compares_models_side_by_side_in_an_offline_report(ingested, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    from tests.fake_ollama import FakeOllama, Script

    docs, data, _ = ingested
    qa = _question_set(tmp_path)
    out, page = tmp_path / "results.jsonl", tmp_path / "report.html"
    with FakeOllama({"a": 8192, "b": 8192}) as server:
        for tokens in (
            ["Employees get ", "25 days [1]. ", HOSTILE],  # model a: q1, q2
            ["Report it ", "within one hour [1]."],
            ["Ten days [1]."],  # model b: q1 wrong, q2 refused
            ["I could not find this in your documents."],
        ):
            server.enqueue(Script(tokens=tokens))
        result = citadel(
            data,
            "eval",
            str(qa),
            "--root",
            str(docs),
            "-c",
            "hr",
            "--model",
            "ollama:a",
            "--model",
            "ollama:b",
            "--model",
            str(SMOLLM2),
            "--out",
            str(out),
            "--report",
            str(page),
            "--json",
            env={
                "CITADEL_LLM__HOST": server.url,
                "CITADEL_LLM__THREADS": "1",
                "CITADEL_LLM__MAX_ANSWER_TOKENS": "32",
                "CITADEL_LLM__MAX_CONTEXT_TOKENS": "2048",  # small prompts: 3 passages
            },
        )
        chats = [r["model"] for r in server.requests if r.get("messages")]

    assert result.returncode == 0, result.stderr
    assert chats == ["a", "a", "b", "b"]  # q3 was refused on the evidence, for every model
    models = {m["model"]: m["overall"] for m in json.loads(result.stdout)["models"]}
    assert list(models) == ["ollama:a", "ollama:b", SMOLLM2.name]
    a, b, smol = models.values()
    assert (a["answer_contains"], b["answer_contains"]) == (1.0, 0.0)
    assert (a["false_refusals"], b["false_refusals"]) == (0, 1)
    assert a["citation_precision_model"] == 1.0 and a["citations_model"] == 2
    assert all(m["refusal_recall"] == 1.0 for m in models.values())
    assert smol["not_generated"] == 0 and smol["prompt_tokens_mean"] > 0
    assert smol["ttft_p50_s"] > 0 and smol["tokens_per_s"] > 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(line["model"], line["id"]) for line in lines] == [
        (m, q) for m in models for q in ("q1", "q2", "q3")
    ]
    assert lines[0]["citations"][0]["holds_answer"] is True and lines[0]["prompt_tokens"] > 0

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context()
            requests: list[str] = []
            context.on("request", lambda r: requests.append(r.url))
            view = context.new_page()
            view.goto(page.as_uri())
            text = view.locator("body").inner_text()
            charts = view.locator("svg").count()
            pwned = view.locator("#pwned").count()
        finally:
            browser.close()

    assert requests == [page.as_uri()]  # nothing but the page itself
    assert all(label in text for label in models)
    assert "Employees get 25 days" in text and HOSTILE in text and pwned == 0
    assert charts >= 3
