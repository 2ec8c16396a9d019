"""OpenAI's Responses API (`POST /v1/responses`), over the same answer service as
`/v1/chat/completions` (ui/http/openai.py): the same models (collections), permissions,
audit, history, error shape, `citadel` field and "Sources:" block. n8n's OpenAI node and
LangChain's chat model ("Use Responses API", their default) call it.

- `input` is a string (the question) or items: messages (`user`, `assistant`, `system`,
  `developer`) whose content is a string or `input_text`/`output_text` parts. The last user
  message is the question, earlier user and assistant messages the history; system and
  developer messages, tool calls and their outputs are ignored, as on chat completions.
- accepted and ignored: `store` (nothing is kept for `GET /v1/responses/{id}`),
  `parallel_tool_calls`, `background: false`, `text: {}` or `{"format": {"type": "text"}}`,
  `temperature`, `top_p`, `reasoning`, `include`, `user`, `tool_choice`, unknown fields.
  `metadata` is echoed back.
- `instructions` are the asker's wish for the answer's form: added to the question's own
  block in the prompt ("How I would like the answer written: ..."), at most 500
  characters, with the question's authority only. Citadel's system prompt, which keeps
  answers to the sources and cited, is never replaced or loosened (a system or developer
  message is ignored, as on chat completions). The retrieval searches the question alone.
- `max_output_tokens` caps the answer's tokens, within the server's llm.max_answer_tokens;
  an answer cut by it is `incomplete` (reason `max_output_tokens`).
- a reasoning model's thinking is not sent here (chat completions send it apart, as
  `reasoning_content`): the output is the one message.
- refused with a 400 naming the field: `previous_response_id` and `conversation` (Citadel
  keeps no responses: send the earlier turns as input items), `background: true`, built-in
  tools (web search, file search...), and `text.format` other than text.
- function tools (an agent's) are not called: the answer says so in a note after its
  sources, and `citadel.tools_ignored` counts them.
- the output text carries `url_citation` annotations: on each [n] marker and on each line
  of the "Sources:" block, with the signed file link and "document, page" as the title.
- streamed, the events are OpenAI's: `response.created`, `response.in_progress`,
  `response.output_item.added`, `response.content_part.added`, `response.output_text.delta`
  ..., `response.output_text.annotation.added` ..., `response.output_text.done`,
  `response.content_part.done`, `response.output_item.done`, then `response.completed`
  (`response.incomplete` when the answer hit its length limit). An error after the first
  event comes as an `error` event.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from rag.code_spans import in_code
from rag.errors import CitadelError
from rag.prompting import STYLE_CHARS
from rag.types import Answer, AnswerOptions, Delta, Thinking
from ui.http.answer_threads import AnswerThreads, final_answer
from ui.http.openai import (
    MAX_MESSAGE_CHARS,
    MAX_MESSAGES,
    SOURCES_HEADING,
    ChatMessage,
    ContentPart,
    OpenAIError,
    OpenAIRoute,
    answer_body,
    answer_tail,
    ask_events,
    caller_of,
    citadel_json,
    event_stream,
    openai_error,
    plain,
)
from ui.http.rest import sse
from ui.metadata.accounts import Caller
from ui.service.workspace import Answered, Workspace

MAX_TOOLS = 128
MAX_METADATA_KEYS = 16  # OpenAI's own limits on metadata
# Bounded as rag.citations bounds markers: int() of a model's 5,000 digits raises.
_MARKER = re.compile(r"\[~?(\d{1,3})\]")

# -- requests ------------------------------------------------------------------------------


class InputItem(BaseModel):
    """An input item: a message (`type` "message" or absent), or anything else (tool calls
    and their outputs, reasoning), which is ignored."""

    model_config = ConfigDict(extra="ignore")
    type: str = "message"
    role: str | None = None
    content: str | list[ContentPart] | None = None

    def message(self) -> ChatMessage | None:
        if self.type != "message" or self.role not in ("user", "assistant", "system", "developer"):
            return None
        if isinstance(self.content, list):
            # input_text, and output_text in an assistant message sent back as history
            texts = [p.text for p in self.content if p.type in _TEXT_PARTS and p.text]
            return ChatMessage(role=self.role, content="\n".join(texts))
        return ChatMessage(role=self.role, content=self.content)


_TEXT_PARTS = ("input_text", "output_text", "text")


class Typed(BaseModel):
    """A tool, or a text format: only its type matters here."""

    model_config = ConfigDict(extra="ignore")
    type: str


class TextOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: Typed | None = None


class ResponsesRequest(BaseModel):
    """OpenAI's response request, as far as Citadel can honour it (see the module's text)."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(
        min_length=1, max_length=200, description="`citadel:<collection>`, or `citadel` for all."
    )
    input: (
        Annotated[str, Field(max_length=MAX_MESSAGE_CHARS)]
        | Annotated[list[InputItem], Field(max_length=MAX_MESSAGES)]
    )
    instructions: str | None = Field(
        None,
        max_length=MAX_MESSAGE_CHARS,
        description="The answer's form (style, length, language), as the asker's wish; "
        f"its first {STYLE_CHARS} characters are read. Citadel's own rules still hold.",
    )
    max_output_tokens: int | None = Field(
        None, ge=16, description="A cap on the answer's tokens, within the server's own."
    )
    stream: bool | None = False
    background: bool | None = None
    previous_response_id: str | None = None
    conversation: str | dict[str, Any] | None = None
    tools: list[Typed] | None = Field(None, max_length=MAX_TOOLS)
    text: TextOptions | None = None
    metadata: dict[str, str] | None = Field(None, max_length=MAX_METADATA_KEYS)
    store: bool | None = None
    parallel_tool_calls: bool | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)

    def messages(self) -> list[ChatMessage]:
        if isinstance(self.input, str):
            return [ChatMessage(role="user", content=self.input)]
        return [m for m in (item.message() for item in self.input) if m is not None]

    def refuse_what_citadel_cannot_do(self) -> None:
        def unsupported(param: str, message: str) -> OpenAIError:
            return OpenAIError(400, message, param=param, code="unsupported_parameter")

        if self.previous_response_id:
            raise unsupported(
                "previous_response_id",
                "Citadel keeps no responses, so previous_response_id cannot be used: send the "
                "earlier turns as input items (user and assistant messages).",
            )
        if self.conversation:
            raise unsupported(
                "conversation",
                "Citadel keeps no conversations: send the earlier turns as input items "
                "(user and assistant messages).",
            )
        if self.background:
            raise unsupported(
                "background",
                "Citadel does not run responses in the background: leave background off "
                "(stream instead, for a long answer).",
            )
        built_in = sorted({t.type for t in self.tools or () if t.type != "function"})
        if built_in:
            raise unsupported(
                "tools",
                f"Citadel offers no built-in tools ({', '.join(plain(t)[:40] for t in built_in)}):"
                " it answers from your documents only.",
            )
        if self.text and self.text.format and self.text.format.type != "text":
            raise unsupported(
                "text.format",
                "Citadel answers in prose with citations: text.format must be text "
                "(no JSON output).",
            )

    def options(self) -> AnswerOptions:
        return AnswerOptions(style=self.instructions, max_tokens=self.max_output_tokens)

    def function_tools(self) -> int:
        return sum(1 for t in self.tools or () if t.type == "function")


# -- responses -----------------------------------------------------------------------------


def tools_note(count: int) -> str:
    if not count:
        return ""
    tools = "tool" if count == 1 else "tools"
    return (
        f"\n\nNote: Citadel answers from your documents and calls no tools: the {count} "
        f"{tools} in the request {'was' if count == 1 else 'were'} not used."
    )


def url_citations(text: str, sources: list[dict[str, Any]], base_url: str) -> list[dict[str, Any]]:
    """`url_citation`s on each [n] marker and each line of the "Sources:" block of `text`,
    for the sources the answer cites (a refusal's closest documents have no link)."""
    by_number = {s["n"]: s for s in sources if s.get("link")}
    if not by_number:
        return []
    block = text.rfind(f"\n\n{SOURCES_HEADING}\n")
    found = []
    for match in _MARKER.finditer(text):
        source = by_number.get(int(match.group(1)))
        if source is None:
            continue
        start, end = match.span()
        in_block = block >= 0 and start > block
        if not in_block and in_code(text[:start]):  # items[1] in the answer's code is code
            continue
        if in_block:  # a line of the block: the whole line
            line_end = text.find("\n", end)
            end = len(text) if line_end < 0 else line_end
        found.append(
            {
                "type": "url_citation",
                "start_index": start,
                "end_index": end,
                "url": base_url + source["link"],
                "title": _title(source),
            }
        )
    return found


def _title(source: dict[str, Any]) -> str:
    """ "document, page" (or the document's section, where it has no pages)."""
    place = f"page {source['page']}" if source.get("page") else source.get("location") or ""
    return plain(f"{source['source']}, {place}" if place else source["source"])


def usage_json(answer: Answer | None) -> dict[str, Any] | None:
    if answer is None:
        return None
    prompt, output = answer.prompt_tokens or 0, answer.output_tokens or 0
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + output,
    }


class Shaper:
    """The response object and its parts for one request, as OpenAI's types define them."""

    def __init__(self, body: ResponsesRequest, base_url: str) -> None:
        self.body = body
        self.base_url = base_url.rstrip("/")
        self.id = f"resp_{secrets.token_hex(16)}"
        self.message_id = f"msg_{secrets.token_hex(16)}"
        self.created = int(time.time())

    def text_part(
        self, text: str = "", notes: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        return {"type": "output_text", "text": text, "annotations": notes or [], "logprobs": []}

    def message(self, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": parts,
        }

    def response(
        self,
        status: Literal["in_progress", "completed", "incomplete"],
        output: list[dict[str, Any]],
        answer: Answer | None = None,
        citadel: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = self.body
        shaped: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"}
            if status == "incomplete"
            else None,
            "instructions": body.instructions,
            "max_output_tokens": body.max_output_tokens,
            "model": body.model,
            "output": output,
            "parallel_tool_calls": bool(body.parallel_tool_calls),
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": False,
            "temperature": body.temperature,
            "text": {"format": {"type": "text"}},
            "tool_choice": "none",  # Citadel calls no tool
            "tools": [],
            "top_p": body.top_p,
            "truncation": "disabled",
            "usage": usage_json(answer),
            "metadata": body.metadata or {},
        }
        if citadel is not None:
            shaped["citadel"] = citadel
        return shaped

    def finished(
        self, workspace: Workspace, caller: Caller, answered: Answered, text: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The completed text part and the whole response, for the answer's final `text`."""
        citadel = citadel_json(workspace, caller, answered)
        citadel["tools_ignored"] = self.body.function_tools()
        part = self.text_part(text, url_citations(text, citadel["sources"], self.base_url))
        answer = answered.answer
        status: Literal["completed", "incomplete"] = (
            "incomplete" if answer.incomplete else "completed"
        )
        output = [self.message(status, [part])]
        return part, self.response(status, output, answer, citadel)


def whole_text(answer: Answer, tools: int) -> str:
    return answer_body(answer) + answer_tail(answer) + tools_note(tools)


def stream_events(
    shaper: Shaper,
    workspace: Workspace,
    caller: Caller,
    events: Iterator[Delta | Thinking | Answered],
) -> Iterator[str]:
    """The response's server-sent events, in OpenAI's order (see the module's text)."""
    sequence = 0

    def event(kind: str, **data: Any) -> str:
        nonlocal sequence
        line = sse(kind, {"type": kind, "sequence_number": sequence, **data})
        sequence += 1
        return line

    item = {"item_id": shaper.message_id, "output_index": 0}
    at_part = {**item, "content_index": 0}
    try:
        yield event("response.created", response=shaper.response("in_progress", []))
        yield event("response.in_progress", response=shaper.response("in_progress", []))
        yield event(
            "response.output_item.added",
            output_index=0,
            item=shaper.message("in_progress", []),
        )
        yield event("response.content_part.added", **at_part, part=shaper.text_part())
        streamed: list[str] = []
        answered: Answered | None = None
        for e in events:
            if isinstance(e, Delta) and e.text:
                streamed.append(e.text)
                yield event("response.output_text.delta", **at_part, delta=e.text, logprobs=[])
            elif isinstance(e, Answered):
                answered = e
        if answered is None:
            raise CitadelError("the answer ended without a result")
        answer = answered.answer
        tools = shaper.body.function_tools()
        if not streamed:
            rest = whole_text(answer, tools)
        elif answer.search_mode:  # not expected: search mode comes without deltas
            rest = "\n\n" + whole_text(answer, tools)
        else:
            rest = answer_tail(answer) + tools_note(tools)
        if rest:
            yield event("response.output_text.delta", **at_part, delta=rest, logprobs=[])
        text = "".join(streamed) + rest
        part, response = shaper.finished(workspace, caller, answered, text)
        for i, note in enumerate(part["annotations"]):
            yield event(
                "response.output_text.annotation.added",
                **at_part,
                annotation_index=i,
                annotation=note,
            )
        yield event("response.output_text.done", **at_part, text=text, logprobs=[])
        yield event("response.content_part.done", **at_part, part=part)
        yield event("response.output_item.done", output_index=0, item=response["output"][0])
        done = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
        yield event(done, response=response)
    except Exception as exc:  # the status line is sent: report in the stream
        error = openai_error(exc)
        yield event("error", code=error.code, message=error.message, param=error.param)
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


# -- the router ----------------------------------------------------------------------------


def responses_router(workspace: Workspace, threads: AnswerThreads) -> APIRouter:
    """`POST /v1/responses`; `GET /v1/responses/{id}` says that nothing is kept. Included
    in `openai_router`, behind its API key."""
    router = APIRouter(route_class=OpenAIRoute)

    @router.post("/responses", response_model=None)
    async def create_response(body: ResponsesRequest, request: Request) -> Response:
        """An answer with citations from your collections, as an OpenAI response."""
        body.refuse_what_citadel_cannot_do()
        caller = caller_of(request)
        try:
            events = await ask_events(
                workspace, threads, request, body.model, body.messages(), "input", body.options()
            )
        except CitadelError as exc:  # the question's errors name the field it came in
            error = openai_error(exc)
            error.param = "input" if error.param == "messages" else error.param
            raise error from exc
        shaper = Shaper(body, str(request.base_url))
        if body.stream:
            return event_stream(threads, stream_events(shaper, workspace, caller, events))
        answered = await threads.run(final_answer, events)
        text = whole_text(answered.answer, body.function_tools())
        _, response = shaper.finished(workspace, caller, answered, text)
        return JSONResponse(response)

    @router.get("/responses/{response_id}")
    def get_response(response_id: str) -> Response:
        raise OpenAIError(
            404,
            "Citadel keeps no responses (store is ignored, background mode is not offered): "
            "ask again with POST /v1/responses.",
            param="response_id",
            code="response_not_found",
        )

    return router
