"""ASGI entry point for the API server processes (`granian ... api.asgi:app`)."""

from api.app import create_app
from control.logs import setup_logging
from control.settings import load_settings

_settings = load_settings()
setup_logging(_settings.log["level"], role="api")
app = create_app(_settings)
