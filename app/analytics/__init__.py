"""Owner analytics across estates: portfolio figures, reconciliation, vacancy and usage reports."""
