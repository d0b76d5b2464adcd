from django.apps import AppConfig


class SubscriptionsConfig(AppConfig):
    name = "obol.subscriptions"
    label = "subscriptions"
