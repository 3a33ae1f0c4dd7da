"""Mittr's HTTP face: routing, auth, request parsing, response shaping."""
