"""`python -m ui` runs the `citadel` command line."""

from ui.cli.app import main

if __name__ == "__main__":
    main()
