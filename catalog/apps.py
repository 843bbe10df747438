from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "catalog"

    def ready(self) -> None:
        # The API's cached price lists hear of every write to the rows they are built from.
        from catalog.price_lists import connect_signals

        connect_signals()
