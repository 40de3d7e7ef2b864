"""Ratchet: keeps predictive models honest in production."""
__version__ = "0.1.0"
