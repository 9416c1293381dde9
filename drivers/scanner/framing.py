# LineFramer: characters or bytes in, complete scans out; a pure function of input and time.
from __future__ import annotations

import codecs
import enum
import math
from dataclasses import dataclass

from .errors import ScannerConfigError

MAX_LENGTH_LIMIT = 8192
TIMEOUT_LIMIT = 60.0
GS = "\x1d"  # GS1 field separator (FNC1 inside a GS1-128 or DataMatrix code)


class Suffix(enum.Enum):
    """What the scanner sends after each code; set the scanner to the same."""

    CR = "\r"
    LF = "\n"
    CRLF = "\r\n"
    TAB = "\t"

    @classmethod
    def parse(cls, name: str) -> Suffix:
        """A suffix from its config name (`CR`, `LF`, `CRLF`, `TAB`, any case)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            choices = ", ".join(member.name for member in cls)
            raise ScannerConfigError(
                f"unknown scanner suffix {name!r}; choose one of {choices}"
            ) from None


class GarbagePolicy(enum.Enum):
    """What to do with a line that holds non-printable characters."""

    REJECT = "reject"  # drop the whole line: a corrupted code must not ring up a wrong item
    STRIP = "strip"  # remove the non-printables and keep the rest


class StalePolicy(enum.Enum):
    """What to do with a partial line older than the inter-character timeout."""

    DROP = "drop"
    FLUSH = "flush"  # deliver it as a scan: for scanners that may lose their suffix


class DropReason(enum.Enum):
    OVERLONG = "overlong"
    GARBAGE = "garbage"
    STALE = "stale"
    INCOMPLETE = "incomplete"


@dataclass(frozen=True, slots=True)
class Line:
    """A complete scan: the code as the scanner sent it, without the suffix."""

    code: str


@dataclass(frozen=True, slots=True)
class Dropped:
    """A line the framer threw away, and why; data is what had arrived (at most max_length)."""

    reason: DropReason
    data: str


FramerOutput = Line | Dropped


@dataclass(frozen=True, slots=True)
class FramingConfig:
    """How a scanner frames its codes; validated on construction."""

    suffix: Suffix = Suffix.CR
    max_length: int = 64
    garbage: GarbagePolicy = GarbagePolicy.REJECT
    allowed_controls: frozenset[str] = frozenset({GS})
    timeout: float | None = None
    stale: StalePolicy = StalePolicy.DROP
    encoding: str = "ascii"

    def __post_init__(self) -> None:
        if not 1 <= self.max_length <= MAX_LENGTH_LIMIT:
            raise ScannerConfigError(
                f"scanner max_length {self.max_length} is out of range 1..{MAX_LENGTH_LIMIT}"
            )
        if self.timeout is not None and not (
            math.isfinite(self.timeout) and 0 < self.timeout <= TIMEOUT_LIMIT
        ):
            raise ScannerConfigError(
                f"scanner timeout {self.timeout} is out of range (0, {TIMEOUT_LIMIT}] seconds"
            )
        bad = {ch for ch in self.allowed_controls if len(ch) != 1 or ch in self.suffix.value}
        if bad:
            raise ScannerConfigError(
                f"scanner allowed_controls {sorted(bad)!r} must be single characters "
                "other than the suffix"
            )
        try:
            codecs.getincrementaldecoder(self.encoding)
        except LookupError as err:
            raise ScannerConfigError(f"unknown scanner encoding {self.encoding!r}") from err


class LineFramer:
    """Splits a scanner's stream into scans on the configured suffix.

    Feed it str (from a key decoder) or bytes (from a port) in chunks of any size; it
    returns the scans and drops each chunk completes. Partial lines wait for their suffix.
    Time, where a timeout is configured, is passed in and never read.
    """

    def __init__(self, config: FramingConfig | None = None) -> None:
        self.config = config or FramingConfig()
        self._decoder = codecs.getincrementaldecoder(self.config.encoding)(errors="replace")
        suffix = self.config.suffix
        # With a one-character line end, the other line-end character is a common scanner
        # setting (CR LF) rather than corruption, so it is skipped instead of rejected.
        self._ignored = (
            frozenset("\r\n") - set(suffix.value)
            if suffix in (Suffix.CR, Suffix.LF)
            else frozenset()
        )
        self._buf: list[str] = []
        self._tainted = False
        self._discarding = False
        self._pending_cr = False
        self._last: float | None = None

    @property
    def pending(self) -> str:
        """The partial line waiting for its suffix."""
        return "".join(self._buf)

    def feed(self, data: str | bytes, now: float | None = None) -> list[FramerOutput]:
        """Consume a chunk; return the scans and drops it completes, in order."""
        out = self.poll(now)
        text = self._decoder.decode(data) if isinstance(data, bytes) else data
        if text:
            self._last = now
        for ch in text:
            self._char(ch, out)
        return out

    def poll(self, now: float | None) -> list[FramerOutput]:
        """Expire a partial line older than the timeout; call it when no data arrives."""
        timeout = self.config.timeout
        if timeout is None:
            return []
        if now is None:
            raise ValueError("this framer has a timeout: pass now (monotonic seconds)")
        if self._last is None or now - self._last <= timeout:
            return []
        self._last = None
        self._decoder.reset()
        if not self._has_partial():
            self._clear()
            return []
        if self.config.stale is StalePolicy.FLUSH and not self._discarding:
            out = self._finish()
        else:
            out = [] if self._discarding else [Dropped(DropReason.STALE, self._partial_text())]
        self._clear()
        return out

    def reset(self) -> list[FramerOutput]:
        """Abandon any partial line (the port closed); report it as incomplete."""
        out: list[FramerOutput] = []
        if self._has_partial() and not self._discarding:
            out.append(Dropped(DropReason.INCOMPLETE, self._partial_text()))
        self._clear()
        self._decoder.reset()
        self._last = None
        return out

    def _has_partial(self) -> bool:
        return bool(self._buf) or self._pending_cr or self._discarding

    def _partial_text(self) -> str:
        return self.pending + ("\r" if self._pending_cr else "")

    def _clear(self) -> None:
        self._buf.clear()
        self._tainted = False
        self._discarding = False
        self._pending_cr = False

    def _char(self, ch: str, out: list[FramerOutput]) -> None:
        suffix = self.config.suffix.value
        if suffix == "\r\n":
            if self._pending_cr:
                self._pending_cr = False
                if ch == "\n":
                    out.extend(self._finish())
                    return
                self._append("\r", out)
            if ch == "\r":
                self._pending_cr = True
                return
        elif ch == suffix:
            out.extend(self._finish())
            return
        if ch in self._ignored:
            return
        self._append(ch, out)

    def _append(self, ch: str, out: list[FramerOutput]) -> None:
        if self._discarding:
            return
        if len(self._buf) >= self.config.max_length:
            out.append(Dropped(DropReason.OVERLONG, self.pending))
            self._buf.clear()
            self._tainted = False
            self._discarding = True
            return
        if not _printable(ch) and ch not in self.config.allowed_controls:
            self._tainted = True
        self._buf.append(ch)

    def _finish(self) -> list[FramerOutput]:
        """The suffix arrived: turn the buffered line into a scan or a drop."""
        if self._discarding:
            self._clear()
            return []
        line = self.pending
        tainted = self._tainted
        self._clear()
        if not line:
            return []
        if tainted and self.config.garbage is GarbagePolicy.REJECT:
            return [Dropped(DropReason.GARBAGE, line)]
        if tainted:
            code = "".join(
                ch for ch in line if _printable(ch) or ch in self.config.allowed_controls
            )
        else:
            code = line
        if not any(_printable(ch) for ch in code):
            return [Dropped(DropReason.GARBAGE, line)]
        return [Line(code)]


def _printable(ch: str) -> bool:
    # U+FFFD stands for bytes the encoding could not decode: line noise, not a character.
    return ch.isprintable() and ch != "\ufffd"
