"""`mediamon serve`: a read-only local web dashboard over the SQLite sinks and the feed state.

app.py is the Starlette app and the bind/token rules; queries.py the read-only SQL; static/ the
page (plain JS, plotly.min.js served from the installed plotly package: works offline).
"""
from pipeline.tools.serve.app import check_bind, create_app, parse_filters, serve

__all__ = ["check_bind", "create_app", "parse_filters", "serve"]
