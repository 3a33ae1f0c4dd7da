"""Mittr's data plane: the supervisor, the shards, their pure policies and the HTTP sender."""
