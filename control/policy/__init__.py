"""Pure policies the control plane and the engine share (partitioning, JSONPath, filters)."""
