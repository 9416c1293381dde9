# QuickBooks Online: Z-report receipts and card payout deposits through python-quickbooks.
from __future__ import annotations

from .connector import QuickBooksConfig, QuickBooksConnector

__all__ = ["QuickBooksConfig", "QuickBooksConnector"]
