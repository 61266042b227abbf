"""emission."""
