"""The balances app's admin, one module per subject."""
from obol.balances.admin import loyalty, pockets, promotions, referrals, vouchers  # noqa: F401
