from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "obol.core"
    label = "core"
    verbose_name = "Obol core (tenants, staff, audit)"
