"""What ops do to many events or messages at once, shared by the API, the console and the CLI."""
