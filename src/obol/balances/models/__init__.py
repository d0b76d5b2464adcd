"""The balances app's models, one module per subject."""
from obol.balances.models.pockets import LedgerEntry, Pocket, Source  # noqa: F401
