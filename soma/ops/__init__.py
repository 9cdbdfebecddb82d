"""Operating the platform: the local stack, the supervisor, process control."""
