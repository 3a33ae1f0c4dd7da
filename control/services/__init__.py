"""Domain services: validation and orchestration over the store, shared by the API and the CLI."""
