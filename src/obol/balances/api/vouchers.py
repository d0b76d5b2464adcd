"""REST routes: vouchers."""
from ninja import Router

router = Router(tags=["balances"])
