"""REST routes: referrals."""
from ninja import Router

router = Router(tags=["balances"])
