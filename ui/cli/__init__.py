"""The `citadel` command line (Typer): ui/cli/app.py is the entry point."""
