# Beancount: the relay's ledger as Beancount files, the demo's default accounting system.
from __future__ import annotations

from .connector import BeancountConfig, BeancountConnector

__all__ = ["BeancountConfig", "BeancountConnector"]
