"""Reports over a window of the store: data (frames), plots (matplotlib) and an HTML page."""
