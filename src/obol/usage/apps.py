from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "obol.usage"
    label = "usage"
    verbose_name = "Usage"
