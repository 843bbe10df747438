"""Writes for the catalog, one module per subdomain (docs/catalog.md, "Where things live"):

- sync.py: fetch a provider's catalog, diff it, write UpstreamService + CatalogChange (SyncReport)
- sync_runs.py: the admin's "Sync now" as a queued CatalogSyncRun that a worker runs
- repricing.py: which markup applies, price decisions, re-pricing panel services
- imports.py: panel services created from upstream services
- prices.py: hand-set prices, held rises, enabling and disabling, services saved in admin
- bulk_pricing.py: the admin's bulk pricing: a previewed plan of new rates, applied through
  repricing and prices with one audit row
- enqueue.py: the one module that hands work to Celery (imports catalog.tasks lazily)
- common.py: the errors and the enable/disable helpers they share
- favourites.py: the services a customer starred on the price list
- descriptions.py: provider HTML in descriptions cleaned to a small allow-list (nh3)

Imports go one way: common ← repricing ← imports ← sync ← sync_runs, common, repricing ← prices,
and repricing, prices ← bulk_pricing.
Callers import from here (`from catalog.services import ...`).
"""

from catalog.pricing import Pause
from catalog.selectors import service_cost
from catalog.services.common import CatalogError, CatalogSyncError
from catalog.services.favourites import service_favourite_set
from catalog.services.imports import catalog_import_services
from catalog.services.prices import (
    service_approve_held_price,
    service_create_by_staff,
    service_disable,
    service_enable,
    service_enable_refusal,
    service_set_price,
    service_update_by_staff,
)
from catalog.services.repricing import (
    catalog_apply_markup,
    catalog_reprice_services,
    service_price_decision,
)
from catalog.services.sync import SyncReport, catalog_sync_provider
from catalog.services.sync_runs import catalog_sync_request, catalog_sync_run_execute

__all__ = [
    "CatalogError",
    "CatalogSyncError",
    "Pause",
    "SyncReport",
    "catalog_apply_markup",
    "catalog_import_services",
    "catalog_reprice_services",
    "catalog_sync_provider",
    "catalog_sync_request",
    "catalog_sync_run_execute",
    "service_approve_held_price",
    "service_cost",
    "service_create_by_staff",
    "service_disable",
    "service_enable",
    "service_enable_refusal",
    "service_favourite_set",
    "service_price_decision",
    "service_set_price",
    "service_update_by_staff",
]
