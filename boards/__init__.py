"""boards package."""
