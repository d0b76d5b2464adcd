"""One module per channel. Each has `send(alert, delivery)`, which returns on success and raises
`DeliveryFailed` (or any exception) on failure; the outbox records the error and retries."""


class DeliveryFailed(Exception):
    pass
