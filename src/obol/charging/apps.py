from django.apps import AppConfig


class ChargingConfig(AppConfig):
    name = "obol.charging"
    label = "charging"
    verbose_name = "Real-time charging"
