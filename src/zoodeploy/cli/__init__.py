"""A thin Typer layer over the library API: one file per command, wired in app.py."""
