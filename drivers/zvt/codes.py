# ZVT code tables: result codes as cashier instructions, intermediate statuses, card types.
from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    APPROVED = "approved"
    DECLINED = "declined"
    ABORTED = "aborted"
    TIMEOUT = "timeout"
    ERROR = "error"


ANOTHER_CARD = "Ask for another card or payment method."
RETRY_SUPPORT = "Try again; call support if it repeats."
NETWORK = "The terminal cannot reach the payment network. Try again or take another payment method."

# Result codes (BMP 27, 06 1E) per PA00P015 chapter 10, each phrased as what the
# cashier does next. Codes 01-63 come from the card issuer's host (ISO 8583 style).
RESULT_MESSAGES: dict[int, str] = {
    0x00: "Approved.",
    0x05: f"Card declined. {ANOTHER_CARD}",
    0x33: f"Card declined: not enough funds. {ANOTHER_CARD}",
    0x36: f"Card expired. {ANOTHER_CARD}",
    0x37: "Wrong PIN. Start the payment again and let the customer re-enter the PIN.",
    0x3D: f"Card declined: amount over the card's limit. {ANOTHER_CARD}",
    0x4B: f"PIN tried too often; the card is locked. {ANOTHER_CARD}",
    0x5B: "The card issuer is not reachable. Try again in a moment or take another payment method.",
    0x60: "The card issuer is not reachable. Try again in a moment or take another payment method.",
    0x64: "The card could not be read. Ask the customer to insert or tap the card again.",
    0x65: "No card data found. Ask the customer to insert or tap the card again.",
    0x66: f"The terminal had a processing error. {RETRY_SUPPORT}",
    0x67: f"This function is not allowed for girocard/Maestro cards. {ANOTHER_CARD}",
    0x68: f"This function is not allowed for credit cards. {ANOTHER_CARD}",
    0x6A: "The terminal's transaction memory is full. Run end-of-day, then try again.",
    0x6B: "The terminal is not registered with the till. Reconnect the terminal, then try again.",
    0x6C: "Payment cancelled at the terminal. Ask how the customer wants to pay.",
    0x6E: f"Card is blocked. {ANOTHER_CARD}",
    0x6F: "The terminal does not accept this currency. Check the terminal's currency setting.",
    0x71: f"Card declined: not enough credit on the card. {ANOTHER_CARD}",
    0x72: "Card chip error. Ask the customer to insert the card again or use another card.",
    0x73: f"Card data is invalid. {ANOTHER_CARD}",
    0x77: f"End-of-day could not be run. {RETRY_SUPPORT}",
    0x78: f"Card expired. {ANOTHER_CARD}",
    0x79: f"Card is not valid yet. {ANOTHER_CARD}",
    0x7A: f"Card not accepted here. {ANOTHER_CARD}",
    0x7B: "The chip could not be read. Ask the customer to insert the card again.",
    0x7C: "The chip could not be read. Ask the customer to insert the card again.",
    0x7D: NETWORK,
    0x7E: "The chip could not be read. Ask the customer to insert the card again.",
    0x83: f"The terminal cannot do this right now. {RETRY_SUPPORT}",
    0x85: "The terminal is missing a key. Call support; take another payment method.",
    0x89: "The PIN pad is faulty. Call support; take another payment method.",
    0x9A: f"The terminal did not understand the till. {RETRY_SUPPORT}",
    0x9B: NETWORK,
    0x9C: "The terminal is busy. Wait a moment, then try again.",
    0xA0: NETWORK,
    0xA1: NETWORK,
    0xA3: NETWORK,
    0xB1: "The terminal's memory is full. Run end-of-day, then try again.",
    0xB2: "The terminal's merchant journal is full. Call support.",
    0xB4: "This payment was already reversed. Nothing more to do.",
    0xB5: "This payment cannot be reversed on the terminal. Do a refund instead.",
    0xB7: "Amount does not match the original payment. Check the amount.",
    0xC3: f"Amount too high for this card. {ANOTHER_CARD}",
    0xC5: f"This payment method is not supported. {ANOTHER_CARD}",
    0xC6: "The terminal does not accept this currency. Check the terminal's currency setting.",
    0xC8: "Amount too small for card payment. Take another payment method.",
    0xCC: "The receipt printer is not ready. Check the paper, then try again.",
    0xDC: "A card is still in the terminal. Ask the customer to remove it, then try again.",
    0xE2: "The terminal's card reader is faulty. Call support; take another payment method.",
    0xF0: "The terminal needs its end-of-day. Run end-of-day, then try again.",
    0xFF: f"The terminal reported a system error. {RETRY_SUPPORT}",
}

# Conditions of the terminal or the network, not verdicts on the card: retry may work.
_TERMINAL_FAULTS = frozenset(
    {0x5B, 0x60, 0x66, 0x6A, 0x6B, 0x6F, 0x77, 0x7D, 0x83, 0x85, 0x89, 0x9A, 0x9B, 0x9C}
    | {0xA0, 0xA1}
    | {0xA3, 0xB1, 0xB2, 0xBF, 0xC0, 0xC1, 0xC2, 0xC4, 0xC6, 0xCC, 0xDC, 0xDD, 0xDE, 0xE0}
    | {0xE2, 0xE3, 0xE4, 0xF0, 0xF5, 0xF6, 0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF}
)
ABORT_CODE = 0x6C

TIMEOUT_MESSAGE = (
    "The terminal stopped answering. Check the terminal, then use Repeat last receipt "
    "before charging again."
)
CONNECTION_MESSAGE = (
    "The connection to the terminal was lost. Check the cable or network, then use "
    "Repeat last receipt before charging again."
)
PROTOCOL_MESSAGE = (
    "The terminal sent something unexpected. Use Repeat last receipt before charging again."
)
RECORD_MESSAGE = (
    "The till could not record the terminal's result, so it refused it and the terminal "
    "cancels the payment. Use Repeat last receipt before charging again."
)


def result_message(code: int | None) -> str:
    """Short instruction for the cashier; unknown codes still say what to do."""
    if code is None:
        return "No result from the terminal."
    message = RESULT_MESSAGES.get(code)
    if message is not None:
        return message
    if 0x01 <= code <= 0x63:
        return f"Card declined (issuer code {code}). {ANOTHER_CARD}"
    return f"The terminal reported error {code:02X}. {RETRY_SUPPORT}"


def classify(code: int) -> Outcome:
    """Approved, aborted (cancel/time-out at the PT), a fault of the terminal, or a decline."""
    if code == 0x00:
        return Outcome.APPROVED
    if code == ABORT_CODE:
        return Outcome.ABORTED
    if code in _TERMINAL_FAULTS:
        return Outcome.ERROR
    return Outcome.DECLINED


# Intermediate status (04 FF) per PA00P015 table 17, in words for the till's display.
INTERMEDIATE_TEXTS: dict[int, str] = {
    0x00: "Waiting for amount confirmation",
    0x01: "Please watch PIN pad",
    0x02: "Please watch PIN pad",
    0x03: "Not accepted",
    0x04: "Waiting for the payment host",
    0x05: "Sending auto-reversal",
    0x06: "Sending post-bookings",
    0x07: "Card not admitted",
    0x08: "Card unknown",
    0x09: "Card expired",
    0x0A: "Insert card",
    0x0B: "Please remove card",
    0x0C: "Card not readable",
    0x0D: "Processing error",
    0x0E: "Please wait",
    0x0F: "Starting automatic end-of-day",
    0x10: "Invalid card",
    0x11: "Balance display",
    0x12: "System malfunction",
    0x13: "Payment not possible",
    0x14: "Credit not sufficient",
    0x15: "Incorrect PIN",
    0x16: "Limit not sufficient",
    0x17: "Please wait",
    0x18: "PIN try limit exceeded",
    0x19: "Card data incorrect",
    0x1A: "Service mode",
    0x1B: "Approved, please fill up",
    0x1C: "Approved, please take goods",
    0x1D: "Declined",
    0x28: "Currency selection, please wait",
    0x29: "Language selection, please wait",
    0x2A: "For loading please insert card",
    0x2B: "Emergency transaction, please wait",
    0x2C: "Application selection, please wait",
    0x68: "Card inserted",
    0x69: "Please select DCC",
    0xC8: "Waiting for cashier",
    0xD2: "Connecting to host",
    0xD3: "Connected to host",
    0xE0: "Waiting for application selection",
    0xE1: "Waiting for language selection",
    0xF1: "Offline",
    0xF2: "Online",
    0xF3: "Offline transaction",
}


def intermediate_text(code: int) -> str:
    text = INTERMEDIATE_TEXTS.get(code)
    if text is not None:
        return text
    # 0x41-0x7F repeat 0x01-0x3F with "please remove card" added.
    base = INTERMEDIATE_TEXTS.get(code - 0x40) if 0x41 <= code <= 0x7F else None
    if base is not None:
        return f"{base}; please remove card"
    return "Please wait"


# ZVT card-type ids (BMP 8A) for when the terminal sends no card name (BMP 8B).
CARD_TYPES: dict[int, str] = {
    2: "ec-card",
    5: "girocard",
    6: "Mastercard",
    8: "American Express",
    10: "Visa",
    11: "Visa Electron",
    12: "Diners",
    13: "V PAY",
    14: "JCB",
    30: "GeldKarte",
    46: "Maestro",
    87: "Bancontact",
    97: "Alipay",
    198: "UnionPay",
    232: "Discover",
}


def card_type_name(card_type: int | None) -> str | None:
    if card_type is None:
        return None
    return CARD_TYPES.get(card_type, f"card type {card_type}")


# The fixed brand order of BMP 60 (individual totals after end-of-day).
TOTALS_BRANDS: tuple[str, ...] = (
    "girocard",
    "JCB",
    "Eurocard/Mastercard",
    "American Express",
    "Visa",
    "Diners",
    "Other cards",
)

# Card-type ids counted in each BMP 60 slot; any other card counts as "Other cards".
_TOTALS_SLOT: dict[int, str] = {
    2: "girocard",
    5: "girocard",
    14: "JCB",
    6: "Eurocard/Mastercard",
    8: "American Express",
    10: "Visa",
    11: "Visa",
    13: "Visa",
    12: "Diners",
}


def totals_brand(card_type: int | None) -> str:
    """The BMP 60 slot (a ``TOTALS_BRANDS`` name) a payment with this card type counts in."""
    return _TOTALS_SLOT.get(card_type or -1, TOTALS_BRANDS[-1])


TERMINAL_STATUS: dict[int, str] = {
    0x00: "ready",
    0x51: "initialisation required",
    0x62: "date/time incorrect",
    0x9C: "busy, please wait",
    0xB1: "memory full: run end-of-day",
    0xB2: "merchant journal full",
    0xCC: "printer not ready",
    0xDC: "card inserted",
    0xDF: "out of order",
    0xE1: "card not completely removed",
    0xF0: "reconciliation (end-of-day) required",
}
