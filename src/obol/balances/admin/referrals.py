"""Back-office admin: referrals."""
