# Customer capture at the counter: the checks on what a cashier types, with messages they act on.
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import Invalid

MAX_NAME = 200
MAX_EMAIL = 200
# One @, no spaces, a dot in the domain: catches typos without refusing real addresses.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_PHONE_CHARS = re.compile(r"^\+?[0-9 ()/.-]+$")
MIN_PHONE_DIGITS = 6
MAX_PHONE_DIGITS = 15  # E.164


@dataclass(frozen=True, slots=True)
class NewCustomer:
    """What the cashier typed, checked and tidied (surrounding spaces gone, email lower-case)."""

    name: str
    email: str | None
    phone: str | None


def check_new_customer(name: str, email: str | None, phone: str | None) -> NewCustomer:
    """Refuse a capture that would not find or reach the customer; say what to fix."""
    name = " ".join(name.split())
    if not name:
        raise Invalid("bad_name", "Type the customer's name.")
    if len(name) > MAX_NAME:
        raise Invalid("bad_name", f"The name is too long: at most {MAX_NAME} characters.")
    email = (email or "").strip() or None
    phone = (phone or "").strip() or None
    if email is None and phone is None:
        raise Invalid(
            "contact_missing",
            "Type an email address or a phone number, so the customer can be found again.",
        )
    if email is not None:
        if len(email) > MAX_EMAIL or not _EMAIL.match(email):
            raise Invalid(
                "bad_email",
                "Check the email address: it needs one @ and a domain, like jana@example.org.",
            )
        local, _, domain = email.partition("@")
        email = f"{local}@{domain.lower()}"
    if phone is not None:
        digits = sum(c.isdigit() for c in phone)
        if not _PHONE_CHARS.match(phone) or not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS:
            raise Invalid(
                "bad_phone",
                f"Check the phone number: {MIN_PHONE_DIGITS} to {MAX_PHONE_DIGITS} digits, "
                "with + for the country code if needed, like +49 30 1234567.",
            )
        phone = " ".join(phone.split())
    return NewCustomer(name, email, phone)
