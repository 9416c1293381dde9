# Where the till's catalog comes from: the down-sync cache, the configured file, or the demo.
from __future__ import annotations

import json
from pathlib import Path

from .config import ConfigError, TerminalConfig
from .downsync import cached_catalog
from .sale import Catalog, SaleError

DEMO_CATALOG = Path(__file__).parent / "demo" / "catalog.json"


def load(config: TerminalConfig) -> Catalog:
    if config.uplink.enabled:
        # The relay's last catalog, so the till sells at today's prices after an offline restart.
        cached = cached_catalog(config)
        if cached is not None:
            return cached
    path = config.catalog or DEMO_CATALOG
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return Catalog.from_dict(doc, tax_classes=config.tax.classes.keys())
    except FileNotFoundError:
        raise ConfigError(f"catalog: {path} does not exist. Fix the path in the config.") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"catalog: {path} is not valid JSON: {err}") from err
    except SaleError as err:
        raise ConfigError(f"catalog: {path}: {err.message}") from err
