"""The web UI (Gradio), mounted at / by ui/http/app.py:

app       the layout and the wiring of events to handlers
handlers  the handlers: plain functions over the Workspace
documents the Documents tab: its layout, wiring, stylesheet and script
document_handlers  its handlers (uploads with stages, library pages, Needs attention)
render    the HTML of answers, sources and progress (all untrusted text escaped)
assets    the stylesheet and the script that opens a cited source
"""
