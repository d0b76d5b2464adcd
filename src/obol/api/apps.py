from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "obol.api"
    label = "api"
