from django.apps import AppConfig


class DemoConfig(AppConfig):
    name = "obol.demo"
    label = "demo"
    verbose_name = "Demo data"
