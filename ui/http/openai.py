"""The OpenAI-compatible API (/v1): any OpenAI client (the official SDKs, LangChain, chat
front ends) can ask Citadel questions about the caller's collections.

Models are collections: `citadel:<collection>` asks one collection, `citadel` asks every
collection the caller may read. `GET /v1/models` lists exactly those, so a probe cannot
tell another team's collection from one that does not exist (both are `model_not_found`).

`POST /v1/chat/completions` maps a chat onto `Workspace.ask`, where every permission is
checked and audited:

- the last user message is the question; earlier user and assistant turns are the history
  (used to rewrite a follow-up as a standalone question). System and developer messages are
  ignored: Citadel's own prompt governs how answers are grounded and cited, and a client's
  prompt must not loosen that. Tool messages are ignored too.
- sampling fields (temperature, max_tokens, ...) are accepted and ignored: the server's
  settings govern generation. `n` must be 1. Unknown fields are ignored, as many clients
  send extras.
- the reply's content is the answer with its [n] markers, then a "Sources:" block listing
  each cited source; in search mode (no model server) or when the documents do not cover
  the question, it is the notice and the passages instead. The extra top-level field
  `citadel` carries the structured answer: its id (for `POST /api/feedback`), the checked
  answer text, the citations with signed file links, and the flags.
- streamed (`stream: true`), the content deltas are the model's text as it is written, with
  invalid markers filtered out; the final, checked answer (`citadel.answer`) may differ
  slightly, e.g. markers Citadel placed on sentences the model left uncited. The sources
  come in the last content chunk, with the `citadel` field.

Errors use OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`. A collection
without documents is a 400 (not the REST API's 409, which OpenAI clients retry).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException  # FastAPI's and Starlette's own (a 413)

from rag.errors import CitadelError
from rag.text import printable
from rag.types import Answer, AnswerOptions, Delta, Message, Thinking
from ui.http.answer_threads import AnswerThreads, ClosingStreamingResponse, final_answer
from ui.http.deps import bearer_caller, client_of
from ui.http.errors import MODEL_NOT_FOUND, http_error, retry_after_s
from ui.http.rest import answered_out
from ui.metadata.accounts import Caller
from ui.service.sources import ShownSource, shown_sources
from ui.service.workspace import Answered, Workspace

log = logging.getLogger(__name__)

ALL_MODEL = "citadel"
MODEL_PREFIX = "citadel:"
OWNER = "citadel"
MAX_MESSAGES = 500
MAX_MESSAGE_CHARS = 100_000
HISTORY_MESSAGES = 50  # the answer service itself uses only the last few
HISTORY_CHARS = 20_000  # per message, like the REST API's history turns

SOURCES_HEADING = "Sources:"
CLOSEST_HEADING = "Closest documents:"
# The block this module appends to answers, found again when a client sends the answer
# back as history: it is not part of what the assistant said.
_APPENDED_BLOCK = re.compile(
    rf"\n\n(?:{SOURCES_HEADING}|{CLOSEST_HEADING})\n(?:(?:\[~?\d+\]|-) [^\n]*(?:\n|$))+\s*$"
)


# -- requests ------------------------------------------------------------------------------


class ContentPart(BaseModel):
    """One part of a message's content; only text parts are read."""

    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(p.text for p in self.content if p.type == "text" and p.text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request. Sampling fields are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(
        min_length=1, max_length=200, description="`citadel:<collection>`, or `citadel` for all."
    )
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(None, ge=1, description="Only 1 is supported.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)


# -- errors --------------------------------------------------------------------------------


class OpenAIError(Exception):
    """An error response in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = headers

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def model_not_found() -> OpenAIError:
    # The same body whatever the model named: unknown and foreign are not told apart.
    return OpenAIError(404, MODEL_NOT_FOUND, param="model", code="model_not_found")


def openai_error(exc: Exception) -> OpenAIError:
    """Any error a /v1 route raises, in OpenAI's terms."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 401:
            return OpenAIError(401, str(exc.detail), code="invalid_api_key", headers=exc.headers)
        return OpenAIError(exc.status_code, str(exc.detail), headers=exc.headers)
    if isinstance(exc, RequestValidationError):
        return _validation_error(exc)
    if isinstance(exc, CitadelError):
        answer = http_error(exc)
        wait = retry_after_s(exc)
        message = answer.openai_message or str(exc)
        if wait is not None:
            message = f"Rate limit reached: too many requests. Try again in {wait} s."
        return OpenAIError(
            answer.openai_status,
            message,
            answer.openai_type,
            answer.param,
            answer.code,
            headers={"Retry-After": str(wait)} if wait is not None else None,
        )
    log.error("unexpected error in the OpenAI-compatible API", exc_info=exc)
    return OpenAIError(500, "The server had an error processing your request.", "server_error")


def _validation_error(exc: RequestValidationError) -> OpenAIError:
    errors = exc.errors()
    if not errors:
        return OpenAIError(400, "invalid request")
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        message, param = "We could not parse the JSON body of your request.", None
    elif param:
        message = f"Invalid value for '{param}': {message}"
    return OpenAIError(400, message, param=param, code="invalid_value")


class OpenAIRoute(APIRoute):
    """Routes whose every error, including auth and body validation, is in OpenAI's shape
    (the application's own handlers answer FastAPI's `{"detail": ...}`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # every error answers in OpenAI's shape
                return openai_error(exc).response()

        return route


# -- responses -----------------------------------------------------------------------------


def model_json(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": OWNER}


def plain(text: str) -> str:
    """Document-derived text on one line: no control characters, no line breaks."""
    return " ".join(printable(text).split())


def answer_body(answer: Answer) -> str:
    """What stands for the answer itself: the model's text, or in search mode (where there
    is none) the notice and the passages, numbered like citations."""
    if not answer.search_mode:
        return answer.text
    lines = [answer.notice or "Search mode: showing the best passages instead of an answer."]
    lines += [""] + [f"[{c.number}] {plain(c.snippet)}" for c in answer.citations]
    return "\n".join(lines)


def answer_tail(answer: Answer) -> str:
    """What follows the answer: the notice (refusal, truncation...) and the sources."""
    parts = []
    if answer.notice and not answer.search_mode:
        parts.append(answer.notice if answer.refused else f"Note: {answer.notice}")
    sources = shown_sources(answer)
    if answer.refused and sources:
        listed = [f"- {plain(s.passage.where)}" for s in sources]
        parts.append("\n".join([CLOSEST_HEADING, *listed]))
    elif sources:
        cited = [_source_line(s) for s in sources]
        parts.append("\n".join([SOURCES_HEADING, *cited]))
    return "".join(f"\n\n{p}" for p in parts)


def _source_line(source: ShownSource) -> str:
    if source.aligned:  # the model did not cite it: Citadel matched the sentence to it
        return f"[~{source.number}] {plain(source.passage.where)} (matched by Citadel)"
    return f"[{source.number}] {plain(source.passage.where)}"


def without_appended_block(text: str) -> str:
    """An answer sent back as history, without the sources block this API appended."""
    return _APPENDED_BLOCK.sub("", text)


def usage_json(answer: Answer) -> dict[str, int]:
    """As the model server counted them (0 when no model wrote the answer)."""
    prompt = answer.prompt_tokens or 0
    completion = answer.output_tokens or 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def citadel_json(workspace: Workspace, caller: Caller, answered: Answered) -> dict[str, Any]:
    body = answered_out(workspace, caller, answered).json_body()
    answer = answered.answer
    return {
        "answer_id": answered.id,
        "answer": answer.text,
        "collections": answered.collections,
        "sources": body["citations"],
        "refused": answer.refused,
        "search_mode": answer.search_mode,
        "notice": answer.notice,
        "incomplete": answer.incomplete,
        "unsupported": answer.unsupported,
    }


def finish_reason(answer: Answer) -> str:
    return "length" if answer.incomplete else "stop"


# -- the conversation ----------------------------------------------------------------------


def conversation(
    messages: Sequence[ChatMessage], param: str = "messages"
) -> tuple[str, list[Message]]:
    """The question (the last user message) and the history before it. `param`: the
    request field the messages came in, as errors name it."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        raise OpenAIError(
            400,
            f"The {param} must include a user message: its text is the question.",
            param=param,
        )
    last = users[-1]
    for i, m in enumerate(messages):
        if len(m.text()) > MAX_MESSAGE_CHARS:
            raise OpenAIError(
                400,
                f"Message {i} is longer than {MAX_MESSAGE_CHARS} characters.",
                param=f"{param}.{i}.content",
                code="context_length_exceeded",
            )
    question = messages[last].text().strip()
    if not question:
        raise OpenAIError(
            400, "The last user message has no text.", param=f"{param}.{last}.content"
        )
    # Its length is checked by the service, with every other question (QuestionTooLong).
    history = []
    for m in messages[:last]:
        if m.role not in ("user", "assistant"):
            continue  # system, developer, tool: Citadel's own prompt governs the answer
        text = m.text()
        if m.role == "assistant":
            text = without_appended_block(text)
        text = text.strip()
        if text:
            history.append(Message(m.role, text[:HISTORY_CHARS]))
    return question, history[-HISTORY_MESSAGES:]


# -- the router ----------------------------------------------------------------------------


def caller_of(request: Request) -> Caller:
    """The caller `authenticated` found for this /v1 request."""
    caller: Caller = request.state.citadel_caller
    return caller


def collections_of(names: list[str], model: str) -> list[str] | None:
    """The collections a model stands for (None: all the caller's `names`), or 404."""
    if model == ALL_MODEL and names:
        return None
    if model.startswith(MODEL_PREFIX) and model[len(MODEL_PREFIX) :] in names:
        return [model[len(MODEL_PREFIX) :]]
    raise model_not_found()


async def ask_events(
    workspace: Workspace,
    threads: AnswerThreads,
    request: Request,
    model: str,
    messages: Sequence[ChatMessage],
    param: str = "messages",
    options: AnswerOptions | None = None,
) -> Iterator[Delta | Thinking | Answered]:
    """The answer's events for the caller's `messages` to `model`. Checks (rate limit,
    access, documents), the wait in line, the search and the model's first token happen
    here, before any output: a refusal is still an HTTP error, not a broken stream."""
    caller = caller_of(request)
    scope = await threads.run(workspace.scope, caller)
    collections = collections_of(scope.readable, model)
    question, history = conversation(messages, param)
    client = client_of(request)

    def asked() -> Iterator[Delta | Thinking | Answered]:
        return workspace.ask(
            caller, question, collections, history, client=client, scope=scope, options=options
        )

    return await threads.run(asked)


def event_stream(threads: AnswerThreads, lines: Iterator[str]) -> Response:
    """Server-sent events drawn from `lines` on the answer threads."""
    return ClosingStreamingResponse(
        threads.iterate(lines),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def openai_router(workspace: Workspace, threads: AnswerThreads, *more: APIRouter) -> APIRouter:
    """/v1: models and chat completions, then `more` routes (built with OpenAIRoute), all
    behind the API key, then the answer for every other URL."""

    def authenticate(request: Request) -> None:
        """Every /v1 route: the API key first, before the body is even validated."""
        request.state.citadel_caller = bearer_caller(workspace, request)

    router = APIRouter(
        route_class=OpenAIRoute, tags=["openai"], dependencies=[Depends(authenticate)]
    )
    started = int(time.time())

    @router.get("/models")
    def list_models(request: Request) -> dict[str, Any]:
        """One model per collection you may read, and `citadel` for all of them."""
        names = workspace.readable(caller_of(request))
        ids = ([ALL_MODEL] if names else []) + [MODEL_PREFIX + n for n in names]
        return {"object": "list", "data": [model_json(i, started) for i in ids]}

    @router.get("/models/{model}")
    def get_model(model: str, request: Request) -> dict[str, Any]:
        collections_of(workspace.readable(caller_of(request)), model)
        return model_json(model, started)

    @router.post("/chat/completions", response_model=None)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        """An answer with citations from your collections, as an OpenAI chat completion."""
        caller = caller_of(request)
        if body.n not in (None, 1):
            raise OpenAIError(
                400,
                "Citadel writes one answer per request: n must be 1.",
                param="n",
                code="unsupported_value",
            )
        events = await ask_events(workspace, threads, request, body.model, body.messages)
        created = int(time.time())
        if not body.stream:
            answered = await threads.run(final_answer, events)
            return JSONResponse(completion_json(workspace, caller, answered, body.model, created))
        usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = stream_chunks(workspace, caller, events, body.model, created, usage)
        return event_stream(threads, chunks)

    for extra in more:
        router.include_router(extra)

    @router.api_route(
        "/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    def unknown(path: str, request: Request) -> Response:
        """Anything else under /v1 (embeddings, files...): not offered, said OpenAI's way."""
        wanted = "/" + path
        known = [
            r
            for r in router.routes
            if isinstance(r, APIRoute) and r.name != "unknown" and r.path_regex.match(wanted)
        ]
        if known:
            return OpenAIError(
                405, f"Method {request.method} is not allowed for {request.url.path}."
            ).response()
        return OpenAIError(
            404,
            f"Unknown request URL: {request.method} {request.url.path}. "
            "Citadel offers /v1/models, /v1/chat/completions and /v1/responses.",
            code="unknown_url",
        ).response()

    return router


def completion_json(
    workspace: Workspace, caller: Caller, answered: Answered, model: str, created: int
) -> dict[str, Any]:
    answer = answered.answer
    return {
        "id": f"chatcmpl-{answered.id}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "system_fingerprint": None,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer_body(answer) + answer_tail(answer),
                    "refusal": None,
                    **({"reasoning_content": answer.thinking} if answer.thinking else {}),
                },
                "logprobs": None,
                "finish_reason": finish_reason(answer),
            }
        ],
        "usage": usage_json(answer),
        "citadel": citadel_json(workspace, caller, answered),
    }


def stream_chunks(
    workspace: Workspace,
    caller: Caller,
    events: Iterator[Delta | Thinking | Answered],
    model: str,
    created: int,
    include_usage: bool,
) -> Iterator[str]:
    """Server-sent events: `data: <chat.completion.chunk>` lines, then `data: [DONE]`. An
    error after the first line comes as a `data: {"error": ...}` line (OpenAI's way)."""
    # The answer's own id is made when it is complete: the stream has its own.
    completion_id = f"chatcmpl-{secrets.token_urlsafe(12)}"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            data["usage"] = None
        data.update(extra)
        return sse_data(data)

    try:
        yield chunk({"role": "assistant", "content": ""})
        streamed = False
        answered: Answered | None = None
        for event in events:
            if isinstance(event, Thinking):  # apart from the content, as vLLM and others send it
                yield chunk({"reasoning_content": event.text})
            elif isinstance(event, Delta):
                streamed = streamed or bool(event.text)
                yield chunk({"content": event.text})
            else:
                answered = event
        if answered is None:
            raise CitadelError("the answer ended without a result")
        answer = answered.answer
        if not streamed:
            rest = answer_body(answer) + answer_tail(answer)
        elif answer.search_mode:  # not expected: search mode comes without deltas
            rest = "\n\n" + answer_body(answer) + answer_tail(answer)
        else:
            rest = answer_tail(answer)
        yield chunk(
            {"content": rest} if rest else {},
            citadel=citadel_json(workspace, caller, answered),
        )
        yield chunk({}, finish_reason(answer))
        if include_usage:
            usage = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage_json(answer),
            }
            yield sse_data(usage)
        yield "data: [DONE]\n\n"
    except Exception as exc:  # the status line is sent: report in the stream
        yield sse_data(openai_error(exc).body())
    finally:
        # Closed with the stream (the client left): the model's stream and the answer's
        # slot go now, not when the garbage collector finds them.
        close = getattr(events, "close", None)
        if close is not None:
            close()


def sse_data(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"
