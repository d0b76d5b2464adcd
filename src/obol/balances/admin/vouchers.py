"""Back-office admin: vouchers."""
