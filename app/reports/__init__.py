"""Read models behind pages (summaries, usage, history, receipts, wallet totals) and the CSV/PDF table code."""
