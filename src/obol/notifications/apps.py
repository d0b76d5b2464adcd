from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "obol.notifications"
    label = "notifications"
    verbose_name = "Alerts and notifications"
