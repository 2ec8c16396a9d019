"""The Documents tab: its layout, its stylesheet and script, and the wiring of its events
to ui/web/document_handlers.py.

The collection picker starts empty when the user may add to several collections (files
must not go to one nobody chose); the drop zone and every result name the collection.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.web.assets import DROP_ZONE_JS
from ui.web.document_handlers import DocumentHandlers, drop_zone
from ui.web.handlers import SORTS, Handlers
from ui.web.render import attention_html, library_html

REMEMBERED_KEY = "citadel-documents-collection"
# The load event's inputs, read from the browser; a choice written back to it.
RECALL_JS = f"() => [localStorage.getItem('{REMEMBERED_KEY}') || '']"
REMEMBER_JS = f"(c) => {{ localStorage.setItem('{REMEMBERED_KEY}', c || ''); return c; }}"

DOCUMENTS_CSS = """
#citadel-tab-documents, #citadel-tab-documents table { font-family: var(--font); }
.citadel-progress table, .citadel-library-table { width: 100%; border-collapse: collapse;
  font-size: 0.9em; }
.citadel-progress th, .citadel-progress td, .citadel-library-table th,
.citadel-library-table td { text-align: left; vertical-align: top; padding: 4px 6px;
  border-bottom: 1px solid var(--border-color-primary); word-break: normal;
  overflow-wrap: break-word; hyphens: none; }
.citadel-progress .citadel-file-status { min-width: 9em; }
.citadel-file-name { overflow-wrap: anywhere; }
.citadel-job-state { font-weight: 600; margin: 0 0 4px; }
.citadel-eta { font-weight: 400; color: var(--body-text-color-subdued); }
.citadel-advice { display: block; color: var(--body-text-color-subdued); font-size: 0.95em; }
body { --citadel-bad: #b42318; --citadel-good: #1b6e20; }
body.dark { --citadel-bad: #fca5a5; --citadel-good: #86efac; }
.citadel-status-failed .citadel-file-status, .citadel-status-rejected .citadel-file-status,
.citadel-status-skipped .citadel-file-status, .citadel-attention-what { color: var(--citadel-bad);
  font-weight: 600; }
.citadel-status-added .citadel-file-status, .citadel-status-updated .citadel-file-status
 { color: var(--citadel-good); font-weight: 600; }
.citadel-library-scroll { overflow-x: auto; max-width: 100%; }
.citadel-library-table th { white-space: nowrap; }
.citadel-library-table td.citadel-num { text-align: right; white-space: nowrap; }
.citadel-library-table td time { white-space: nowrap; }
.citadel-library-table .citadel-doc-name { min-width: 12em; }
.citadel-doc-title { font-size: 0.9em; color: var(--body-text-color-subdued); }
.citadel-page-line { margin: 6px 0; }
@media (max-width: 640px) {
  /* A phone shows what tells documents apart; the type is in the name already. */
  .citadel-library-table .citadel-col-minor { display: none; }
  .citadel-library-table .citadel-doc-name { min-width: 6em; }
  .citadel-library-table th, .citadel-library-table td { padding: 4px 3px; }
}
.citadel-attention { list-style: none; margin: 0; padding: 0; }
.citadel-attention-item { border-bottom: 1px solid var(--border-color-primary);
  padding: 6px 0; }
.citadel-attention-reason { overflow-wrap: break-word; }
.citadel-attention-actions { display: flex; gap: 8px; margin-top: 4px; }
.citadel-attention-actions:empty { display: none; }
.citadel-attention-button { border: 1px solid var(--border-color-primary); border-radius: 6px;
  padding: 2px 12px; background: var(--button-secondary-background-fill);
  color: var(--body-text-color); cursor: pointer; }
.citadel-attention-button:hover { background: var(--button-secondary-background-fill-hover); }
.citadel-attention-count { margin: 0 0 4px; font-weight: 600; }
"""

# Runs once when the Needs attention list mounts: Retry and Dismiss send the file's name
# and the action through a hidden text box and button, the way a Gradio event takes input.
ATTENTION_JS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest ? event.target.closest('button[data-action]') : null;
  if (!button || !element.contains(button)) return;
  const field = document.querySelector('#citadel-attention-payload textarea');
  const send = document.getElementById('citadel-attention-send');
  if (!field || !send) return;
  field.value = JSON.stringify({action: button.dataset.action, source: button.dataset.source});
  field.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => send.click(), 50);
});
"""


def documents_tab(web: Handlers, blocks: gr.Blocks) -> dict[str, Any]:
    """The tab's layout and wiring (its own load event picks the collection)."""
    h = DocumentHandlers(web)
    d: dict[str, Any] = {}
    # The last collection chosen in this browser (its localStorage, read by the load
    # event's script: a gr.BrowserState inside a tab not shown yet is never read).
    d["remembered"] = gr.Textbox(
        "", elem_id="citadel-doc-remembered", elem_classes=["citadel-offstage"], max_length=200
    )
    d["rejected"] = gr.State([])
    d["offset"] = gr.State(0)
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=300):
            d["collection"] = gr.Dropdown(
                choices=[],
                value=None,
                label="Collection",
                info="The collection your files go to, and whose documents are listed",
                elem_id="citadel-doc-collection",
            )
            gr.Markdown("### Upload")
            d["files"] = gr.File(
                file_count="multiple",
                label="Choose a collection above first, then drop files here",
                elem_id="citadel-upload",
            )
            d["progress"] = gr.HTML("", elem_id="citadel-upload-status", js_on_load=DROP_ZONE_JS)
            gr.Markdown("### Needs attention")
            d["attention"] = gr.HTML(
                attention_html([], None), elem_id="citadel-attention", js_on_load=ATTENTION_JS
            )
            d["attention_payload"] = gr.Textbox(
                elem_id="citadel-attention-payload",
                elem_classes=["citadel-offstage"],
                max_length=4000,
            )
            d["attention_send"] = gr.Button(
                elem_id="citadel-attention-send", elem_classes=["citadel-offstage"]
            )
        with gr.Column(scale=3):
            gr.Markdown("### Library")
            with gr.Row():
                d["filter"] = gr.Textbox(
                    label="Filter",
                    placeholder="name or title, then Enter",
                    elem_id="citadel-library-filter",
                )
                d["sort"] = gr.Dropdown(
                    choices=list(SORTS),
                    value="Name",
                    label="Sort by",
                    elem_id="citadel-library-sort",
                )
                d["refresh"] = gr.Button("Refresh", elem_id="citadel-library-refresh")
            d["library"] = gr.HTML(
                library_html([], 0, 0, None, ""), elem_id="citadel-library", js_on_load=None
            )
            with gr.Row(equal_height=True, elem_id="citadel-library-pager"):
                d["page"] = gr.HTML("", elem_id="citadel-library-page", js_on_load=None)
                d["previous"] = gr.Button(
                    "← Previous", interactive=False, size="sm", elem_id="citadel-library-previous"
                )
                d["next"] = gr.Button(
                    "Next →", interactive=False, size="sm", elem_id="citadel-library-next"
                )
            with gr.Row():
                d["select"] = gr.Dropdown(
                    choices=[], label="Document", elem_id="citadel-doc-select", scale=3
                )
                d["reingest"] = gr.Button("Read again", elem_id="citadel-doc-reingest")
                d["delete"] = gr.Button("Delete…", variant="stop", elem_id="citadel-doc-delete")
                d["confirm"] = gr.Button(
                    "Yes, delete it",
                    variant="stop",
                    visible=False,
                    elem_id="citadel-doc-delete-confirm",
                )
            d["status"] = gr.HTML("", elem_id="citadel-doc-status", js_on_load=None)
    _wire(h, d, blocks)
    return d


def _wire(h: DocumentHandlers, d: dict[str, Any], blocks: gr.Blocks) -> None:
    private: dict[str, Any] = {"api_visibility": "private"}
    listing = [
        d["library"],
        d["page"],
        d["previous"],
        d["next"],
        d["offset"],
        d["select"],
        d["attention"],
    ]
    view = [d["collection"], d["filter"], d["sort"]]
    paged = [*view, d["offset"], d["rejected"]]
    blocks.load(
        h.open_tab,
        inputs=[d["remembered"]],
        outputs=[d["collection"], d["files"]],
        js=RECALL_JS,
        **private,
    ).then(h.first_page, inputs=[*view, d["rejected"]], outputs=listing, **private)
    # The drop zone names the collection the files will go to; a choice is remembered.
    d["collection"].change(drop_zone, inputs=[d["collection"]], outputs=[d["files"]], **private)
    d["collection"].input(None, inputs=[d["collection"]], js=REMEMBER_JS, **private)
    for trigger in (d["collection"].input, d["filter"].submit, d["sort"].input):
        trigger(h.first_page, inputs=[*view, d["rejected"]], outputs=listing, **private)
    d["refresh"].click(h.library, inputs=paged, outputs=listing, **private)
    d["previous"].click(h.previous_page, inputs=paged, outputs=listing, **private)
    d["next"].click(h.next_page, inputs=paged, outputs=listing, **private)
    d["files"].upload(
        h.upload,
        inputs=[d["files"], *paged],
        outputs=[d["progress"], d["files"], d["rejected"], *listing],
        **private,
    )
    d["attention_send"].click(
        h.attend,
        inputs=[d["attention_payload"], *paged],
        outputs=[d["progress"], d["attention_payload"], d["rejected"], *listing],
        **private,
    )
    d["reingest"].click(
        h.reingest, inputs=[d["select"], *paged], outputs=[d["status"], *listing], **private
    )
    d["delete"].click(
        h.ask_delete, inputs=[d["select"]], outputs=[d["confirm"], d["status"]], **private
    )
    d["select"].change(
        lambda _: gr.Button(visible=False),
        inputs=[d["select"]],
        outputs=[d["confirm"]],
        **private,
    )
    d["confirm"].click(
        h.delete,
        inputs=[d["select"], *paged],
        outputs=[d["status"], d["confirm"], *listing],
        **private,
    )
