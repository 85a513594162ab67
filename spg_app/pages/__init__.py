"""The app's pages; each ``page(ctx)`` draws one from the sidebar's context."""
