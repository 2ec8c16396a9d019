"""Citadel's front ends: the `citadel` command line (and, later, the web server)."""
