"""Version of vilu_sklearn."""

__version__ = "0.1.0"
