# purpose: pure codec for ESC/POS real-time status (DLE EOT n): requests out, one-byte answers in.
"""Build ``DLE EOT n`` requests and turn their one-byte answers into a ``PrinterHealth``.

Every answer byte has fixed bits (bit 0 = 0, bit 1 = 1, bit 4 = 1, bit 7 = 0). A byte that
breaks them is not a status answer (line noise, an echoed data byte) and is ignored, so
feeding any byte, or any run of bytes, never raises.
"""

from __future__ import annotations

from dataclasses import dataclass

DLE = 0x10
EOT = 0x04

PRINTER_STATUS = 1
"""n=1: online/offline and the drawer kick connector pin 3 level."""
OFFLINE_CAUSE = 2
"""n=2: cover open, paper feed button, printing stopped for paper end, error."""
ERROR_CAUSE = 3
"""n=3: recoverable, auto-cutter, unrecoverable and auto-recoverable errors."""
PAPER_SENSOR = 4
"""n=4: roll paper near-end and end sensors."""

_FIXED_MASK = 0b1001_0011
_FIXED_VALUE = 0b0001_0010

# n=1
_BIT_DRAWER_PIN3_HIGH = 0x04
_BIT_OFFLINE = 0x08
# n=2
_BIT_COVER_OPEN = 0x04
_BIT_FEED_BUTTON = 0x08
_BIT_STOPPED_PAPER_END = 0x20
_BIT_ERROR = 0x40
# n=3
_BIT_RECOVERABLE = 0x04
_BIT_CUTTER = 0x08
_BIT_UNRECOVERABLE = 0x20
_BIT_AUTO_RECOVERABLE = 0x40
# n=4 (each condition is reported on two bits; either set counts)
_BITS_NEAR_END = 0x0C
_BITS_PAPER_END = 0x60


def status_request(n: int) -> bytes:
    """Return the ``DLE EOT n`` request for n in 1..4."""
    if n not in (PRINTER_STATUS, OFFLINE_CAUSE, ERROR_CAUSE, PAPER_SENSOR):
        raise ValueError(f"DLE EOT n must be 1..4, not {n!r}")
    return bytes((DLE, EOT, n))


def is_status_byte(value: int) -> bool:
    """Whether ``value`` could be an answer to ``DLE EOT n`` (its fixed bits are right)."""
    return 0 <= value <= 0xFF and value & _FIXED_MASK == _FIXED_VALUE


def pick_status_byte(data: bytes) -> int | None:
    """The last byte of a read that is a plausible status answer, or None."""
    for value in reversed(data):
        if is_status_byte(value):
            return value
    return None


@dataclass(frozen=True, slots=True)
class PrinterHealth:
    """What the printer said about itself; ``reported`` is False when it cannot say."""

    online: bool
    responding: bool = True
    cover_open: bool = False
    paper_low: bool = False
    paper_out: bool = False
    drawer_open: bool | None = None
    error: bool = False
    cutter_error: bool = False
    unrecoverable_error: bool = False
    auto_recoverable_error: bool = False
    feed_button: bool = False
    reported: bool = True

    @classmethod
    def ready(cls) -> PrinterHealth:
        """A healthy printer with paper and a closed drawer (the dummy's default)."""
        return cls(online=True, drawer_open=False)

    @classmethod
    def unreported(cls) -> PrinterHealth:
        """For write-only transports: assume online, know nothing else."""
        return cls(online=True, responding=False, reported=False)

    @classmethod
    def silent(cls) -> PrinterHealth:
        """The printer did not answer at all: switched off, unplugged or hung."""
        return cls(online=False, responding=False)

    @property
    def can_print(self) -> bool:
        """Whether a receipt sent now would print right away."""
        return (
            self.online
            and not self.cover_open
            and not self.paper_out
            and not self.error
            and not self.unrecoverable_error
        )

    def problems(self) -> tuple[str, ...]:
        """Short machine-readable names of every condition worth showing, worst first."""
        names: list[str] = []
        if not self.responding and self.reported:
            names.append("offline")
        if self.cover_open:
            names.append("cover_open")
        if self.paper_out:
            names.append("paper_out")
        if self.unrecoverable_error:
            names.append("unrecoverable_error")
        if self.cutter_error:
            names.append("cutter_error")
        if self.error and not (self.unrecoverable_error or self.cutter_error):
            names.append("error")
        if self.responding and not self.online and not names:
            names.append("offline")
        if self.paper_low and not self.paper_out:
            names.append("paper_low")
        return tuple(names)


def _valid(value: int | None) -> int | None:
    if value is None or not isinstance(value, int) or not is_status_byte(value):
        return None
    return value


def parse_health(
    printer: int | None,
    offline_cause: int | None = None,
    error_cause: int | None = None,
    paper: int | None = None,
    *,
    drawer_open_high: bool = True,
) -> PrinterHealth:
    """Combine the answers to DLE EOT 1..4 (None = no or invalid answer) into one health.

    ``drawer_open_high`` is the drawer's sensor polarity: True when pin 3 reads HIGH while
    the drawer is open (the usual wiring), False for drawers wired the other way.
    """
    p1 = _valid(printer)
    if p1 is None:
        return PrinterHealth.silent()
    p2 = _valid(offline_cause)
    p3 = _valid(error_cause)
    p4 = _valid(paper)
    pin3_high = bool(p1 & _BIT_DRAWER_PIN3_HIGH)
    paper_out = bool(p2 is not None and p2 & _BIT_STOPPED_PAPER_END) or bool(
        p4 is not None and p4 & _BITS_PAPER_END
    )
    return PrinterHealth(
        online=not p1 & _BIT_OFFLINE,
        responding=True,
        cover_open=bool(p2 is not None and p2 & _BIT_COVER_OPEN),
        paper_low=bool(p4 is not None and p4 & _BITS_NEAR_END),
        paper_out=paper_out,
        drawer_open=pin3_high if drawer_open_high else not pin3_high,
        error=bool(p2 is not None and p2 & _BIT_ERROR)
        or bool(p3 is not None and p3 & _BIT_RECOVERABLE),
        cutter_error=bool(p3 is not None and p3 & _BIT_CUTTER),
        unrecoverable_error=bool(p3 is not None and p3 & _BIT_UNRECOVERABLE),
        auto_recoverable_error=bool(p3 is not None and p3 & _BIT_AUTO_RECOVERABLE),
        feed_button=bool(p2 is not None and p2 & _BIT_FEED_BUTTON),
    )


def needs_error_cause(offline_cause: int | None) -> bool:
    """Whether DLE EOT 3 is worth asking: only when DLE EOT 2 flagged an error."""
    value = _valid(offline_cause)
    return value is not None and bool(value & _BIT_ERROR)
