"""`python -m ui` runs the `citadel` command line."""

from ui.cli import main

if __name__ == "__main__":
    main()
