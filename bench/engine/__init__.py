"""The engine: the trainer (core + regularizers)."""
