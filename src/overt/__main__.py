"""``python -m overt``: the command line, as the ``overt`` console script runs it."""

from __future__ import annotations

if __name__ == "__main__":
    from overt.cli import main

    main()
