# End-of-day reconciliation as a connector: re-run at each day close, alert on MQTT (built in).
from __future__ import annotations

from .connector import ReconcileConfig, ReconcileConnector

__all__ = ["ReconcileConfig", "ReconcileConnector"]
