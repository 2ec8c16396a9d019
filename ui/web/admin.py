"""The Administration tab (administrators only; hidden for members, and every handler is
refused by the Workspace for them anyway): its layout and the wiring of its events to
ui/web/admin_handlers.py.

Sub-screens: Users, Teams, Collections, Folders (ui/web/folders.py), API keys, Audit log,
Suggested questions, Model, Feedback export. Every change refreshes every list, so what is
shown is what is stored.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ui.web.admin_handlers import AUDIT_ACTIONS, ROLES, VIEWS, AdminHandlers
from ui.web.folders import build_folders
from ui.web.handlers import Handlers


def build_admin(web: Handlers, tab: gr.Tab, ask: dict[str, Any]) -> dict[str, Any]:
    """The tab's content, built inside `tab`; `ask`: the Ask tab's components (its
    suggested questions follow the editor here)."""
    admin = AdminHandlers(web)
    a: dict[str, Any] = {}
    private: dict[str, Any] = {"api_visibility": "private"}
    with gr.Tabs(elem_id="citadel-admin-tabs"):
        with gr.Tab("Users", id="admin-users", elem_id="citadel-admin-users-tab"):
            _users(a)
        with gr.Tab("Teams", id="admin-teams", elem_id="citadel-admin-teams-tab"):
            _teams(a)
        with gr.Tab("Collections", id="admin-collections", elem_id="citadel-admin-coll-tab"):
            _collections(a)
        # Named apart: `tab` is the Administration tab, whose opening reads every list.
        with gr.Tab("Folders", id="admin-folders", elem_id="citadel-admin-folders-tab") as fold:
            build_folders(web, fold)
        with gr.Tab("API keys", id="admin-keys", elem_id="citadel-admin-keys-tab"):
            _keys(a)
        with gr.Tab("Audit log", id="admin-audit", elem_id="citadel-admin-audit-tab") as audit:
            _audit(a)
        with gr.Tab(
            "Suggested questions", id="admin-starters", elem_id="citadel-admin-starters-tab"
        ):
            _starters(a)
        with gr.Tab("Model", id="admin-model", elem_id="citadel-admin-model-tab") as model:
            _model(a)
        with gr.Tab("Feedback export", id="admin-export", elem_id="citadel-admin-export-tab"):
            _export(a)

    views = [a[name] for name in VIEWS]
    audit_filters = [a["audit_user"], a["audit_action"], a["audit_since"], a["audit_until"]]
    audit_shown = [a["audit_count"], a["audit_table"]]

    # Opening the tab (or pressing Refresh) reads every list afresh.
    tab.select(admin.views, outputs=views, **private).then(
        admin.audit, inputs=audit_filters, outputs=audit_shown, **private
    )
    a["refresh"].click(admin.views, outputs=views, **private)

    a["add_user"].click(
        admin.add_user,
        inputs=[a["new_name"], a["new_password"], a["new_role"], a["new_teams"]],
        outputs=[a["new_status"], a["new_name"], a["new_password"], a["new_teams"], *views],
        **private,
    )
    a["user_pick"].input(
        admin.pick_user, inputs=[a["user_pick"]], outputs=[a["user_teams"]], **private
    )
    for button, handler in ((a["disable"], admin.disable_user), (a["enable"], admin.enable_user)):
        button.click(
            handler, inputs=[a["user_pick"]], outputs=[a["user_status"], *views], **private
        )
    a["reset"].click(
        admin.reset_password,
        inputs=[a["user_pick"], a["user_password"]],
        outputs=[a["user_status"], a["user_password"]],
        **private,
    )
    a["save_teams"].click(
        admin.set_teams,
        inputs=[a["user_pick"], a["user_teams"]],
        outputs=[a["user_status"], *views],
        **private,
    )

    a["add_team"].click(
        admin.add_team,
        inputs=[a["team_name"]],
        outputs=[a["team_status"], a["team_name"], *views],
        **private,
    )

    a["create_collection"].click(
        admin.create_collection,
        inputs=[a["new_collection"], a["new_collection_team"]],
        outputs=[a["collection_status"], a["new_collection"], *views],
        **private,
    )
    a["set_owner"].click(
        admin.set_owner,
        inputs=[a["owner_collection"], a["owner_team"]],
        outputs=[a["collection_status"], *views],
        **private,
    )

    a["create_key"].click(
        admin.create_key,
        inputs=[a["key_user"], a["key_label"]],
        outputs=[a["key_created"], a["key_label"], *views],
        **private,
    )
    a["revoke_key"].click(
        admin.revoke_key, inputs=[a["key_pick"]], outputs=[a["key_status"], *views], **private
    )

    audit.select(admin.audit, inputs=audit_filters, outputs=audit_shown, **private)
    a["audit_show"].click(admin.audit, inputs=audit_filters, outputs=audit_shown, **private)

    a["starters_collection"].change(
        admin.load_starters,
        inputs=[a["starters_collection"]],
        outputs=[a["starters_editor"]],
        **private,
    )
    a["starters_save"].click(
        admin.save_starters,
        inputs=[a["starters_collection"], a["starters_editor"], ask["collections"]],
        outputs=[a["starters_status"], a["starters_editor"], ask["starters"]],
        **private,
    )

    model.select(admin.model_status, outputs=[a["model"]], **private)
    a["model_check"].click(admin.model_status, outputs=[a["model"]], **private)

    a["export"].click(admin.export, outputs=[a["exported"], a["export_status"]], **private)
    return a


def _status(elem_id: str) -> Any:
    return gr.HTML("", elem_id=elem_id, js_on_load=None)


def _users(a: dict[str, Any]) -> None:
    a["refresh"] = gr.Button("Refresh the lists", size="sm", elem_id="citadel-admin-refresh")
    a["users_table"] = gr.HTML("", elem_id="citadel-admin-users", js_on_load=None)
    with gr.Accordion("Add a user", open=True, elem_id="citadel-admin-add-user"):
        with gr.Row():
            a["new_name"] = gr.Textbox(
                label="User name", max_length=64, elem_id="citadel-admin-new-name"
            )
            a["new_password"] = gr.Textbox(
                label="Password (at least 10 characters)",
                type="password",
                max_length=1024,
                elem_id="citadel-admin-new-password",
            )
        with gr.Row():
            a["new_role"] = gr.Dropdown(
                choices=ROLES, value="member", label="Role", elem_id="citadel-admin-new-role"
            )
            a["new_teams"] = gr.Dropdown(
                choices=[],
                value=[],
                multiselect=True,
                label="Teams",
                elem_id="citadel-admin-new-teams",
            )
        a["add_user"] = gr.Button("Add user", variant="primary", elem_id="citadel-admin-add")
        a["new_status"] = _status("citadel-admin-new-status")
    with gr.Accordion("Change a user", open=True, elem_id="citadel-admin-change-user"):
        a["user_pick"] = gr.Dropdown(choices=[], label="User", elem_id="citadel-admin-user")
        with gr.Row():
            a["disable"] = gr.Button("Disable", variant="stop", elem_id="citadel-admin-disable")
            a["enable"] = gr.Button("Enable", elem_id="citadel-admin-enable")
        a["user_password"] = gr.Textbox(
            label="New password (at least 10 characters)",
            type="password",
            max_length=1024,
            elem_id="citadel-admin-user-password",
        )
        a["reset"] = gr.Button("Reset password", elem_id="citadel-admin-reset")
        a["user_teams"] = gr.Dropdown(
            choices=[],
            value=[],
            multiselect=True,
            label="Their teams",
            elem_id="citadel-admin-user-teams",
        )
        a["save_teams"] = gr.Button("Save teams", elem_id="citadel-admin-save-teams")
        a["user_status"] = _status("citadel-admin-user-status")


def _teams(a: dict[str, Any]) -> None:
    a["teams_table"] = gr.HTML("", elem_id="citadel-admin-teams", js_on_load=None)
    a["team_name"] = gr.Textbox(
        label="New team's name", max_length=64, elem_id="citadel-admin-team-name"
    )
    a["add_team"] = gr.Button("Add team", elem_id="citadel-admin-add-team")
    a["team_status"] = _status("citadel-admin-team-status")


def _collections(a: dict[str, Any]) -> None:
    a["collections_table"] = gr.HTML("", elem_id="citadel-admin-collections", js_on_load=None)
    gr.Markdown("#### Create a collection")
    with gr.Row():
        a["new_collection"] = gr.Textbox(
            label="Collection name", max_length=64, elem_id="citadel-admin-collection-name"
        )
        a["new_collection_team"] = gr.Dropdown(
            choices=[], label="Owned by", elem_id="citadel-admin-collection-team"
        )
    a["create_collection"] = gr.Button("Create", elem_id="citadel-admin-create-collection")
    gr.Markdown("#### Change a collection's owner")
    with gr.Row():
        a["owner_collection"] = gr.Dropdown(
            choices=[], label="Collection", elem_id="citadel-admin-owner-collection"
        )
        a["owner_team"] = gr.Dropdown(
            choices=[], label="New owner", elem_id="citadel-admin-owner-team"
        )
    a["set_owner"] = gr.Button("Change owner", elem_id="citadel-admin-set-owner")
    a["collection_status"] = _status("citadel-admin-collection-status")


def _keys(a: dict[str, Any]) -> None:
    a["keys_table"] = gr.HTML("", elem_id="citadel-admin-keys", js_on_load=None)
    gr.Markdown("#### Create a key")
    with gr.Row():
        a["key_user"] = gr.Dropdown(choices=[], label="For user", elem_id="citadel-admin-key-user")
        a["key_label"] = gr.Textbox(
            label="Label (what it is for)", max_length=100, elem_id="citadel-admin-key-label"
        )
    a["create_key"] = gr.Button("Create key", elem_id="citadel-admin-create-key")
    a["key_created"] = _status("citadel-admin-key-created")  # the new key, shown once
    gr.Markdown("#### Revoke a key")
    a["key_pick"] = gr.Dropdown(choices=[], label="Key", elem_id="citadel-admin-key-pick")
    a["revoke_key"] = gr.Button("Revoke", variant="stop", elem_id="citadel-admin-revoke-key")
    a["key_status"] = _status("citadel-admin-key-status")


def _audit(a: dict[str, Any]) -> None:
    with gr.Row():
        a["audit_user"] = gr.Dropdown(
            choices=[("anyone", "")],
            value="",
            allow_custom_value=True,
            label="User",
            elem_id="citadel-admin-audit-user",
        )
        a["audit_action"] = gr.Dropdown(
            choices=AUDIT_ACTIONS, value="", label="Action", elem_id="citadel-admin-audit-action"
        )
        a["audit_since"] = gr.Textbox(
            label="From (YYYY-MM-DD)", max_length=10, elem_id="citadel-admin-audit-since"
        )
        a["audit_until"] = gr.Textbox(
            label="To (YYYY-MM-DD)", max_length=10, elem_id="citadel-admin-audit-until"
        )
    a["audit_show"] = gr.Button("Show", variant="primary", elem_id="citadel-admin-audit-show")
    a["audit_count"] = _status("citadel-admin-audit-count")
    a["audit_table"] = gr.HTML("", elem_id="citadel-admin-audit", js_on_load=None)


def _starters(a: dict[str, Any]) -> None:
    gr.Markdown("Questions offered under the question box for a collection (at most 8).")
    a["starters_collection"] = gr.Dropdown(
        choices=[], label="Collection", elem_id="citadel-admin-starters-collection"
    )
    a["starters_editor"] = gr.Textbox(
        label="Questions, one per line", lines=4, elem_id="citadel-admin-starters-editor"
    )
    a["starters_save"] = gr.Button("Save", elem_id="citadel-admin-starters-save")
    a["starters_status"] = _status("citadel-admin-starters-status")


def _model(a: dict[str, Any]) -> None:
    a["model"] = gr.HTML("", elem_id="citadel-admin-model", js_on_load=None)
    a["model_check"] = gr.Button("Check again", elem_id="citadel-admin-model-check")


def _export(a: dict[str, Any]) -> None:
    gr.Markdown("Answers rated helpful, as a question set (JSONL) for `citadel eval`.")
    a["export"] = gr.Button("Export feedback", elem_id="citadel-export-feedback")
    # Shown once there is a file: Gradio's empty file box is a div with a prohibited label.
    a["exported"] = gr.File(
        label="Export", interactive=False, visible=False, elem_id="citadel-export-file"
    )
    a["export_status"] = _status("citadel-export-status")
