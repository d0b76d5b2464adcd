"""What other apps may react to in a subscription's life.

Receivers run inside the transaction that made the change, so what they write commits or rolls
back with it; they must only write to the database (queue e-mails and webhooks with
transaction.on_commit) and be idempotent.
"""
from django.dispatch import Signal

# A subscription became active: sent with subscription=..., effective_date=..., actor=...
# `first_for_customer` is True when it is the first subscription of its customer ever activated.
subscription_activated = Signal()
