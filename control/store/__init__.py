"""The store layer: the only code that talks SQL."""
