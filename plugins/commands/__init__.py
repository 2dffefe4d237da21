"""Built-in CLI command plugins (register_commands)."""
