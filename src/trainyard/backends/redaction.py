"""Secret values out of captured output: each is replaced by `[secret NAME]` as the output streams.

A rank's output arrives in chunks of any size, so a value may be cut in two between reads. The
redactor holds back the end of a chunk while it could still be the start of a value, and lets it
go once the next bytes show it is not (or at the end of the stream).
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class Redactor:
    """Feed it bytes as they come; it returns them with every secret value replaced."""

    def __init__(self, secrets: Mapping[str, str]):
        """`secrets`: name -> value. Empty values are ignored: there is nothing of them to hide."""
        labels: dict[bytes, bytes] = {}
        for name, value in sorted(secrets.items()):
            if value:
                labels.setdefault(value.encode(), f"[secret {name}]".encode())
        self._labels = labels
        values = sorted(labels, key=len, reverse=True)  # the longest first, where one value starts another
        self._pattern = re.compile(b"|".join(re.escape(v) for v in values)) if values else None
        self._starts = frozenset(v[0] for v in values)
        self._longest = len(values[0]) if values else 0
        self._pending = b""

    def __bool__(self) -> bool:
        return self._pattern is not None

    def feed(self, data: bytes) -> bytes:
        """What of `pending + data` can be written now, redacted."""
        if self._pattern is None:
            return data
        data = self._pending + data
        out = []
        pos = 0
        for m in self._pattern.finditer(data):
            if self._may_grow(data, m.start()):
                break  # "abc" (or "abcd") now may be "abcdef", another secret, with the next bytes
            out.append(data[pos:m.start()])
            out.append(self._labels[m.group()])
            pos = m.end()
        keep = self._partial(data, pos)
        out.append(data[pos:keep])
        self._pending = data[keep:]
        return b"".join(out)

    def flush(self) -> bytes:
        """The end of the stream: whatever was held back, redacted (it holds no whole value)."""
        rest, self._pending = self._pending, b""
        if self._pattern is None or not rest:
            return rest
        return self._pattern.sub(lambda m: self._labels[m.group()], rest)

    def redact(self, data: bytes) -> bytes:
        """One whole piece of output at once (a stored log read back)."""
        return self.feed(data) + self.flush()

    def _may_grow(self, data: bytes, start: int) -> bool:
        """Whether all of `data` from `start` on is the unfinished start of a (longer) value."""
        if len(data) - start >= self._longest:
            return False
        tail = data[start:]
        return any(len(v) > len(tail) and v.startswith(tail) for v in self._labels)

    def _partial(self, data: bytes, start: int) -> int:
        """Where the longest tail of `data[start:]` that begins some value starts (len(data): none)."""
        for i in range(max(start, len(data) - self._longest + 1), len(data)):
            if data[i] in self._starts:
                tail = data[i:]
                if any(v.startswith(tail) for v in self._labels):
                    return i
        return len(data)
