from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "obol.customers"
    label = "customers"
