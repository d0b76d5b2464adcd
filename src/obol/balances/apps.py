from django.apps import AppConfig


class BalancesConfig(AppConfig):
    name = "obol.balances"
    label = "balances"
    verbose_name = "Pockets and balances"

    def ready(self):
        from obol.balances import referrals  # noqa: F401  (connects the first-activation receiver)
        from obol.balances import promotions  # noqa: F401  (connects the plan-promotion receiver)
        from obol.balances import allowances  # noqa: F401  (grants the first period on activation)
