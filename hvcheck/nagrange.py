"""Threshold ranges as the Monitoring Plugins development guidelines define them.

``[@]start:end``: ``start`` defaults to 0, ``~`` means negative infinity, an empty ``end``
means positive infinity. A value outside the range alerts; with a leading ``@`` a value inside
it does.

>>> [Range.parse("10").alerts(v) for v in (-1, 0, 10, 11)]
[True, False, False, True]
>>> [Range.parse("10:").alerts(v) for v in (9, 10)]
[True, False]
>>> [Range.parse("~:10").alerts(v) for v in (-5, 11)]
[False, True]
>>> [Range.parse("@10:20").alerts(v) for v in (9, 10, 20, 21)]
[False, True, True, False]
"""

import math
from typing import NamedTuple


class Range(NamedTuple):
    start: float
    end: float
    inside: bool
    text: str

    @classmethod
    def parse(cls, text: str) -> "Range":
        raw = text.strip()
        if not raw:
            raise ValueError("empty range")
        inside = raw.startswith("@")
        body = raw[1:] if inside else raw
        if ":" in body:
            lo, hi = body.split(":", 1)
        else:
            lo, hi = "0", body
        start = -math.inf if lo == "~" else (_num(lo) if lo else 0.0)
        end = math.inf if hi == "" else _num(hi)
        if start > end:
            raise ValueError(f"range {text!r}: start is greater than end")
        return cls(start, end, inside, raw)

    def alerts(self, value: float) -> bool:
        within = self.start <= value <= self.end
        return within if self.inside else not within


def _num(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise ValueError(f"not a number: {s!r}") from None
    if math.isnan(v):
        raise ValueError("NaN is not a threshold")
    return v
