"""Usage: importers of CDR/EDR files (one module per format), later mediation, rating and suspense."""
