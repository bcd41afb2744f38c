"""``python -m hvcheck``, and the ``hvcheck`` command (pyproject's ``[project.scripts]``).

The cyclic garbage collector is off before anything else is imported (``hvcheck.cli.console``
says why): importing click, psutil and hvcheck's own modules made ~20 collections, ~2 ms of a
monitoring run. Only the command imports this module; ``import hvcheck.cli`` leaves the
collector alone.
"""

import gc

gc.disable()

from hvcheck.cli import console  # noqa: E402  (after gc.disable: the point of this module)

if __name__ == "__main__":
    console()
