# ZVT driver errors: one hierarchy so callers catch ZvtError and nothing from pyserial or socket.
from __future__ import annotations


class ZvtError(Exception):
    """Base of every error the ZVT driver raises."""


class ZvtConnectionError(ZvtError):
    """The link to the terminal could not be opened, was lost, or a write failed."""


class ZvtTimeoutError(ZvtError):
    """The terminal did not answer within the configured time-out."""


class ZvtProtocolError(ZvtError):
    """The terminal sent something the protocol does not allow, or refused our frames."""


class ZvtParseError(ZvtProtocolError):
    """A BMP field, TLV container or APDU could not be decoded (the codecs' only error)."""
