"""The balances app's models, one module per subject; each module lists its models in __all__."""
from obol.balances.models.loyalty import *  # noqa: F401,F403
from obol.balances.models.pockets import LedgerEntry, Pocket, Source  # noqa: F401
from obol.balances.models.promotions import *  # noqa: F401,F403
from obol.balances.models.referrals import *  # noqa: F401,F403
from obol.balances.models.vouchers import *  # noqa: F401,F403
