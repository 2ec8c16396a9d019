"""The Administration tab's Folders screen: its layout and the wiring of its events to
ui/web/folder_handlers.py."""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.web.folder_handlers import FolderHandlers
from ui.web.handlers import Handlers


def build_folders(web: Handlers, tab: gr.Tab) -> None:
    """The screen's content, built inside `tab`; opening the tab reads the folders afresh."""
    folders = FolderHandlers(web)
    private: dict[str, Any] = {"api_visibility": "private"}
    gr.Markdown(
        "Folders of the server (mounted SMB or NFS shares) that a collection mirrors: new "
        "and changed files go in, files gone leave it, at every sync."
    )
    table = gr.HTML("", elem_id="citadel-admin-folders", js_on_load=None)
    with gr.Row():
        pick = gr.Dropdown(choices=[], label="Folder", elem_id="citadel-admin-folder-pick")
        keep = gr.Checkbox(
            label="Keep its documents when detaching", elem_id="citadel-admin-folder-keep"
        )
    with gr.Row():
        sync = gr.Button("Sync now", variant="primary", elem_id="citadel-admin-folder-sync")
        detach = gr.Button("Detach", variant="stop", elem_id="citadel-admin-folder-detach")
    gr.Markdown("#### Attach a folder")
    with gr.Row():
        collection = gr.Dropdown(
            choices=[],
            allow_custom_value=True,
            label="Collection",
            elem_id="citadel-admin-folder-collection",
        )
        path = gr.Textbox(
            label="Absolute path on the server",
            max_length=4096,
            elem_id="citadel-admin-folder-path",
        )
    attach = gr.Button("Attach", elem_id="citadel-admin-folder-attach")
    status = gr.HTML("", elem_id="citadel-admin-folder-status", js_on_load=None)

    view = [table, pick, collection]
    tab.select(folders.view, outputs=view, **private)
    sync.click(folders.sync_now, inputs=[pick], outputs=[status, *view], **private)
    detach.click(folders.detach, inputs=[pick, keep], outputs=[status, *view], **private)
    attach.click(
        folders.attach, inputs=[collection, path], outputs=[status, path, *view], **private
    )
