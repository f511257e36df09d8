"""Suite definitions, the run loop, Sacred records and launchers."""
