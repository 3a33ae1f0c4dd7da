"""Mittr control plane: settings, the Postgres store, domain services, signalling and the CLI."""
