from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "obol.billing"
    label = "billing"
    verbose_name = "Billing and invoicing"
