"""``python -m hvcheck``."""

from hvcheck.cli import console

if __name__ == "__main__":
    console()
