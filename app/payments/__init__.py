"""Payments (P1-P6): providers turn what they receive into `Payment` rows, and
`app.payments.credit.credit_payment()` is the one path from a payment into a wallet."""
