"""``python -m hvcheck``."""

from hvcheck.cli import main

if __name__ == "__main__":
    main()
