"""The ``camwatch`` / ``python -m worker`` commands, one module each."""
