from django.apps import AppConfig


class BalancesConfig(AppConfig):
    name = "obol.balances"
    label = "balances"
    verbose_name = "Pockets and balances"
