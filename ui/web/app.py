"""The web UI: a Gradio app mounted at / of the team server: its layout and the wiring of
its events to the handlers (ui/web/handlers.py).

It only ever calls the Workspace, through the handlers; the pickers shown here are a
convenience, never a decision. Document text and file names are rendered by
ui/web/render.py as escaped HTML; the model's answers as Markdown without raw HTML or
images (ui/web/markdown.py), so nothing shown can make an outside request.

Offline: no analytics, system fonts only, no run history kept in the browser, no links to
Gradio's API pages.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI

from ui.service.limits import MAX_QUESTION_CHARS
from ui.service.workspace import Workspace
from ui.web.admin import build_admin
from ui.web.assets import CHAT_JS, CSS, SESSION_JS
from ui.web.documents import DOCUMENTS_CSS, documents_tab
from ui.web.handlers import Handlers
from ui.web.render import EMPTY_CHAT, source_panel_html

# The Soft theme, with primary buttons dark enough for their white text (WCAG AA).
THEME = gr.themes.Soft(
    font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]
).set(
    button_primary_background_fill="*primary_700",
    button_primary_background_fill_hover="*primary_800",
    button_primary_text_color="white",
)


def mount_web(app: FastAPI, workspace: Workspace) -> None:
    """Mount the web UI at / (after the API routes, which keep precedence)."""
    server = workspace.settings.server
    web = Handlers(workspace)
    blocks = build(web)
    gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        # Citadel's own login (/login, ui/http/login.py) sets the session Gradio reads here.
        auth_dependency=web.session_user if server.auth else None,
        ssr_mode=False,
        footer_links=[],
        run_history=False,
        mcp_server=False,
        pwa=False,
        enable_monitoring=False,
        show_error=False,
        max_file_size=int(server.max_upload_mb * 2**20),
        theme=THEME,
        css=CSS + DOCUMENTS_CSS,
    )


def build(web: Handlers) -> gr.Blocks:
    """The UI's layout, each event wired to its handler."""
    blocks = gr.Blocks(analytics_enabled=False, title="Citadel", delete_cache=(3600, 3600))
    with blocks:
        turns = gr.State([])
        with gr.Row(equal_height=False):
            gr.Markdown("# Citadel", elem_id="citadel-title")
            user = gr.HTML("", elem_id="citadel-user", js_on_load=None)
        with gr.Tabs(elem_id="citadel-tabs"):
            with gr.Tab("Ask", id="ask", elem_id="citadel-tab-ask"):
                chat = _chat_tab(web, turns)
            with gr.Tab("Documents", id="documents", elem_id="citadel-tab-documents"):
                documents_tab(web, blocks)  # with its own load event
            with gr.Tab(
                "Administration", id="admin", elem_id="citadel-tab-admin", visible=False
            ) as admin_tab:
                build_admin(web, admin_tab, chat)

        blocks.load(
            web.on_load,
            outputs=[
                user,
                chat["collections"],
                admin_tab,
            ],
            api_visibility="private",
        ).then(
            web.saved_conversations,  # a page opens on a new conversation, like any chat
            outputs=[chat["saved"]],
            api_visibility="private",
        ).then(
            web.starters_for,
            inputs=[chat["collections"]],
            outputs=[chat["starters"]],
            api_visibility="private",
        )
    blocks.queue(default_concurrency_limit=16)
    return blocks


def _chat_tab(web: Handlers, turns: gr.State) -> dict[str, Any]:
    c: dict[str, Any] = {}
    c["conversation_id"] = gr.State("")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            with gr.Row(equal_height=True):
                c["saved"] = gr.Dropdown(
                    choices=[],
                    value=None,
                    label="Your conversations",
                    elem_id="citadel-saved",
                    scale=3,
                )
                c["title"] = gr.Textbox(
                    label="Name of this conversation",
                    max_length=120,
                    elem_id="citadel-conversation-title",
                    scale=3,
                )
                with gr.Column(scale=1, min_width=110):
                    c["rename"] = gr.Button("Rename", size="sm", elem_id="citadel-rename")
                    c["forget"] = gr.Button(
                        "Delete", size="sm", variant="stop", elem_id="citadel-delete-conversation"
                    )
            c["saved_status"] = gr.HTML("", elem_id="citadel-saved-status", js_on_load=None)
            c["collections"] = gr.Dropdown(
                choices=[],
                value=None,  # until the page has loaded them (then [] means "none chosen")
                multiselect=True,
                label="Collections to search",
                elem_id="citadel-collections",
            )
            c["starters"] = gr.Dataset(
                components=[gr.Textbox(visible=False)],
                samples=[],
                label="Suggested questions",
                elem_id="citadel-starters",
                visible=False,
            )
            # Gradio's chat, fed HTML this server rendered and escaped (ui/web/render.py);
            # Gradio's own sanitiser runs over it as well. No Markdown pass of its own: the
            # model's Markdown was rendered, without raw HTML, by ui/web/markdown.py.
            c["conversation"] = gr.Chatbot(
                [],
                label="Conversation",
                show_label=False,
                elem_id="citadel-conversation",
                render_markdown=False,
                sanitize_html=True,
                buttons=[],  # Copy is under each answer: Gradio's would copy the HTML
                feedback_options=None,  # Helpful / Not helpful, with a comment, are ours
                autoscroll=False,  # the page's script follows new text itself
                placeholder=EMPTY_CHAT,
                height="min(68vh, 720px)",
                min_height=260,
                layout="panel",  # answers full width, as in ChatGPT or Open WebUI
            )
            # The question box stays in view at the bottom of the window (a phone too).
            with gr.Row(elem_id="citadel-ask-row"):
                # One line that grows: Enter sends, Shift+Enter starts a new line (Gradio's
                # Textbox does the opposite when it starts with several lines).
                c["question"] = gr.Textbox(
                    placeholder="Ask a question about your documents… (Shift+Enter: new line)",
                    label="Question",
                    show_label=False,
                    lines=1,
                    max_lines=8,
                    max_length=MAX_QUESTION_CHARS,
                    scale=6,
                    elem_id="citadel-question",
                )
                with gr.Column(scale=1, min_width=120):
                    c["send"] = gr.Button("Send", variant="primary", elem_id="citadel-send")
                    c["stop"] = gr.Button(
                        "Stop", variant="stop", visible=False, elem_id="citadel-stop"
                    )
                    c["clear"] = gr.Button("New conversation", elem_id="citadel-new-chat")
            c["rate_result"] = gr.HTML("", elem_id="citadel-rate-result", js_on_load=None)
            # What a thumb under an answer sends (filled by the page's script, never shown).
            c["rate_payload"] = gr.Textbox(
                elem_id="citadel-rate-payload", elem_classes=["citadel-offstage"], max_length=4000
            )
            c["rate_send"] = gr.Button(
                elem_id="citadel-rate-send", elem_classes=["citadel-offstage"]
            )
        with gr.Column(scale=2, elem_id="citadel-source-column"):
            gr.Markdown("### Source")
            gr.HTML(
                '<button type="button" id="citadel-sheet-close">Close the source</button>',
                js_on_load=None,
            )
            # The page's script (sources, feedback, following the text, the session) runs
            # once this panel mounts: it is never empty, so its script always runs.
            gr.HTML(
                source_panel_html(),
                elem_id="citadel-source-panel",
                js_on_load=CHAT_JS + SESSION_JS,
            )

    ask_inputs = [c["question"], c["collections"], turns]
    ask_outputs = [c["conversation"], turns, c["question"], c["send"], c["stop"]]
    # Asking is wired to three triggers (send, Enter, a starter question), the same way.
    asking: dict[str, Any] = {
        "fn": web.ask,
        "inputs": ask_inputs,
        "outputs": ask_outputs,
        "api_visibility": "private",
        "concurrency_limit": 16,
    }
    # While an answer streams, Stop replaces Send (the answer's handler swaps them); Stop
    # cancels the event, which closes the answer's generator and with it the model's stream.
    answering = [trigger(**asking) for trigger in (c["send"].click, c["question"].submit)]
    answering.append(
        c["starters"]
        .click(
            web.pick_starter,
            inputs=[c["starters"]],
            outputs=[c["question"]],
            api_visibility="private",
        )
        .then(**asking)
    )
    # Retry (Gradio's, on the last answer) writes that answer again.
    answering.append(
        c["conversation"].retry(
            web.regenerate,
            inputs=[c["collections"], turns],
            outputs=ask_outputs,
            api_visibility="private",
            concurrency_limit=16,
        )
    )
    stopping = c["stop"].click(
        web.stop,
        inputs=[turns],
        outputs=[c["conversation"], turns, c["send"], c["stop"]],
        cancels=answering,
        api_visibility="private",
    )
    starting = [
        c["conversation"],
        turns,
        c["rate_result"],
        c["conversation_id"],
        c["title"],
        c["saved"],
    ]
    for trigger in (c["clear"].click, c["conversation"].clear):
        trigger(web.new_conversation, outputs=starting, api_visibility="private")
    # Saved after each answer (and a stopped one); opened, renamed and deleted from the list.
    saving: dict[str, Any] = {
        "fn": web.save_conversation,
        "inputs": [c["conversation_id"], turns],
        "outputs": [c["conversation_id"], c["title"], c["saved"]],
        "api_visibility": "private",
    }
    for event in answering:
        event.then(**saving)
    stopping.then(**saving)
    shown = [c["conversation"], turns, c["conversation_id"], c["title"], c["saved"]]
    c["saved"].input(
        web.open_conversation,
        inputs=[c["saved"]],
        outputs=shown,
        api_visibility="private",
    )
    c["rename"].click(
        web.rename_conversation,
        inputs=[c["conversation_id"], c["title"]],
        outputs=[c["saved"], c["saved_status"]],
        api_visibility="private",
    )
    c["forget"].click(
        web.delete_conversation,
        inputs=[c["conversation_id"]],
        outputs=[*shown, c["saved_status"]],
        api_visibility="private",
    )
    c["collections"].change(
        web.starters_for,
        inputs=[c["collections"]],
        outputs=[c["starters"]],
        api_visibility="private",
    )
    c["rate_send"].click(
        web.rate_inline,
        inputs=[c["rate_payload"]],
        outputs=[c["rate_result"], c["rate_payload"]],
        api_visibility="private",
    )
    return c
