"""Route handlers, one module per family of the API guide. Importing a module registers its routes."""

from api.handlers import endpoints, events, system

__all__ = ["endpoints", "events", "system"]
