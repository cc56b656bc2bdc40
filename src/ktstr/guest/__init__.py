"""guest layer."""
