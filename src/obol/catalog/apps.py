from django.apps import AppConfig


class CatalogConfig(AppConfig):
    name = "obol.catalog"
    label = "catalog"
