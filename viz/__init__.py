"""Live pyqtgraph view and offline coastlines. Imported only by the CLI."""
