"""Built-in plugins: strategies, models and datasets, registered through the same hooks as third-party ones."""
