"""Monthly statements: their figures from the ledger, the PDF, the monthly runs and the audit report.

`figures` reads one unit's month (`statement_for`), `pdf` draws it, `runs` issues and
delivers a month's statements as a job, and `audit_report` is the estate's ledger audit.
"""
