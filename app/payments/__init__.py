"""Payments (P1-P6): providers turn what they receive into `Payment` rows, and
`app.payments.credit.credit_payment()` is the one path from a payment into a wallet."""


class PaymentError(Exception):
    """Payments' base error: the payment cannot be taken or credited as asked; nothing was written.

    `field` names the form field at fault, when one is, so a form shows the message next to it.
    """

    def __init__(self, message: str = "", *, field: str | None = None):
        super().__init__(message)
        self.field = field

    @property
    def errors(self) -> dict[str, str]:
        """The form errors by field: the message under its field (or under "" for the form as a whole)."""
        return {self.field or "": str(self)}
