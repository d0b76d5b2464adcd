"""Alerts: stored, shown in the admin, sent by e-mail and webhook through an outbox (see docs/alerts.md)."""
