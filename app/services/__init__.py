"""Domain operations: the only code that changes state. Callers own the transaction."""
