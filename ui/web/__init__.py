"""The web UI (Gradio), mounted at / by ui/http/app.py:

app       the layout and the wiring of events to handlers
handlers  the handlers: plain functions over the Workspace
admin     the Administration tab's layout and wiring (administrators only)
admin_handlers  its handlers: users, teams, collections, keys, audit log, model status
documents the Documents tab: its layout, wiring, stylesheet and script
document_handlers  its handlers (uploads with stages, library pages, Needs attention)
render    the HTML of answers, sources and progress (all untrusted text escaped)
markdown  the model's Markdown, rendered without raw HTML or images
assets    the stylesheet and the page's script (sources, Copy, feedback, following)
"""
