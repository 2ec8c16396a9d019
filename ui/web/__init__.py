"""The web UI (Gradio), mounted at / by ui/http/app.py:

app       the layout and the wiring of events to handlers
handlers  the handlers: plain functions over the Workspace
admin     the Administration tab's layout and wiring (administrators only)
admin_handlers  its handlers: users, teams, collections, keys, audit log, model status
render    the HTML of answers, sources and progress (all untrusted text escaped)
assets    the stylesheet and the script that opens a cited source
"""
