"""Route handlers, one module per family of the API guide. Importing a module registers its routes."""

from api.handlers import endpoint_security, endpoints, events, system

__all__ = ["endpoint_security", "endpoints", "events", "system"]
