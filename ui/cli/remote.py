"""The CLI's client for a running Citadel server (settings `server.url` and
`server.api_key`): while the server owns the store, the CLI goes through its API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from ingest.discover import discover
from rag.errors import CitadelError
from rag.types import AnswerEvent, Delta, Message, SearchFilter, Thinking
from ui.http.wire import AnswerOut, SearchRequest

FILES_PER_REQUEST = 10  # well under the server's default uploads_per_minute (30)
UPLOAD_RETRIES = 30
MAX_WAIT_S = 60.0


class RemoteCitadel:
    def __init__(self, url: str, api_key: str | None, timeout_s: float = 300.0) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._url = url.rstrip("/")
        self._http = httpx.Client(base_url=self._url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RemoteCitadel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CitadelError(f"no Citadel server answers at {self._url}: {exc}") from exc
        self._check(response)
        return response

    @staticmethod
    def _check(response: httpx.Response) -> None:
        if response.is_success:
            return
        response.read()
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        if response.status_code == 401:
            detail = "the server wants a valid API key: set CITADEL_SERVER__API_KEY"
        raise CitadelError(f"server: {detail} (HTTP {response.status_code})")

    def _post_files(self, collection: str, paths: list[Path]) -> dict[str, Any]:
        """One upload request; when the server's per-user rate limit answers 429, wait
        as long as it says and send again (a big folder goes through, just slower)."""
        for _ in range(UPLOAD_RETRIES):
            with ExitStack() as stack:
                files = [("files", (p.name, stack.enter_context(p.open("rb")))) for p in paths]
                try:
                    response = self._http.post(
                        f"/api/collections/{collection}/documents", files=files
                    )
                except httpx.HTTPError as exc:
                    raise CitadelError(f"no Citadel server answers at {self._url}: {exc}") from exc
            if response.status_code != 429:
                self._check(response)
                return dict(response.json())
            time.sleep(_retry_after(response))
        self._check(response)
        raise AssertionError("unreachable: _check raised on the 429")

    def collections(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/api/collections").json())

    def documents(self, collection: str) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/api/collections/{collection}/documents").json())

    def delete(self, document_id: str) -> int:
        """Remove a document; the number of chunks removed."""
        return int(self._call("DELETE", f"/api/documents/{document_id}").json()["chunks_removed"])

    # -- folders kept in sync (ui/cli/sources.py) --------------------------------------
    def folder_sources(self, collection: str | None) -> list[dict[str, Any]]:
        params = {"collection": collection} if collection else {}
        return list(self._call("GET", "/api/sources", params=params).json())

    def attach_folder(self, collection: str, path: str) -> dict[str, Any]:
        body = {"collection": collection, "path": path}
        return dict(self._call("POST", "/api/sources", json=body).json())

    def detach_folder(self, ref: str, keep_documents: bool) -> int:
        params = {"ref": ref, "keep_documents": str(keep_documents).lower()}
        return int(self._call("DELETE", "/api/sources", params=params).json()["documents_removed"])

    def sync_folders(self, collection: str | None, source: str | None) -> list[dict[str, Any]]:
        """Start the syncs and wait for them to end: their finished jobs."""
        body = {"collection": collection, "source": source}
        jobs = list(self._call("POST", "/api/sources/sync", json=body).json()["jobs"])
        return [self._waited(job) for job in jobs]

    def _waited(self, job: dict[str, Any]) -> dict[str, Any]:
        """The job once it has ended (polled twice a second)."""
        while job["state"] in ("queued", "running"):
            time.sleep(0.5)
            job = dict(self._call("GET", f"/api/jobs/{job['id']}").json())
        return job

    def search(
        self,
        question: str,
        collections: Sequence[str],
        search_filter: SearchFilter | None,
        top_k: int | None,
    ) -> dict[str, Any]:
        body = {"question": question, "collections": list(collections), "top_k": top_k}
        return dict(
            self._call(
                "POST", "/api/search", json=body | SearchRequest.filter_fields(search_filter)
            ).json()
        )

    def ask(
        self,
        question: str,
        collections: Sequence[str],
        history: Sequence[Message],
        search_filter: SearchFilter | None,
    ) -> Iterator[AnswerEvent]:
        body = {
            "question": question,
            "collections": list(collections),
            "history": [{"role": m.role, "content": m.content} for m in history],
            "stream": True,
        } | SearchRequest.filter_fields(search_filter)
        try:
            with self._http.stream("POST", "/api/ask", json=body) as response:
                self._check(response)
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        data = json.loads(line.removeprefix("data: "))
                        if event == "delta":
                            yield Delta(data["text"])
                        elif event == "thinking":
                            yield Thinking(data["text"])
                        elif event == "answer":
                            yield AnswerOut.model_validate(data).to_answer()
        except httpx.HTTPError as exc:
            raise CitadelError(f"the answer stream from {self._url} broke: {exc}") from exc

    def upload(
        self,
        paths: list[Path],
        collection: str,
        max_bytes: int,
        on_file: Callable[[dict[str, str]], None],
    ) -> list[dict[str, Any]]:
        """Upload the files under `paths` (stored by file name on the server), wait for
        their ingestion, and return one outcome per file: {source, status, reason...}."""
        found = discover(paths, max_bytes)
        outcomes: list[dict[str, Any]] = [
            {"source": r.source, "status": r.status, "reason": r.reason} for r in found.rejected
        ]
        by_name: dict[str, Path] = {}
        for candidate in found.candidates:
            if candidate.path.name in by_name:
                outcomes.append(
                    {
                        "source": candidate.source,
                        "status": "skipped",
                        "reason": "another file has the same name (the server stores by name)",
                    }
                )
                continue
            by_name[candidate.path.name] = candidate.path
        names = list(by_name)
        for start in range(0, len(names), FILES_PER_REQUEST):
            batch = names[start : start + FILES_PER_REQUEST]
            body = self._post_files(collection, [by_name[name] for name in batch])
            for rejected in body["rejected"]:
                outcomes.append(
                    {"source": rejected["name"], "status": "failed", "reason": rejected["reason"]}
                )
                on_file(outcomes[-1])
            job = self._waited(body["job"]) if body["job"] is not None else None
            for f in job["files"] if job else []:
                outcomes.append(
                    {
                        "source": f["name"],
                        "status": f["status"],
                        "chunks": f["chunks"],
                        "reason": f["reason"],
                    }
                )
                on_file(outcomes[-1])
        return outcomes


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_WAIT_S) if value.isdigit() else 5.0
