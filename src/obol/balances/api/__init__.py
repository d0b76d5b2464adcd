"""The balances app's REST routes, one module per subject, under one router."""
from ninja import Router

from obol.balances.api import loyalty, pockets, promotions, referrals, vouchers

router = Router()
for _module in (pockets, vouchers, loyalty, referrals, promotions):
    router.add_router("/", _module.router)
