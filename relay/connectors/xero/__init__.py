# Xero: Z-report journals, invoices and card payouts through the official xero-python SDK.
from __future__ import annotations

from .connector import XeroConfig, XeroConnector

__all__ = ["XeroConfig", "XeroConnector"]
