"""SMS notifications: rows wait in the outbox (channel "sms", status "pending").

The SMS gateway collects them and reports their delivery through
`app.payments.mpesa_sms.handle_gateway_post` (the same phone relays M-PESA messages in).
"""
from app.models import Person

MAX_SMS_CHARS = 480  # three concatenated SMS parts


def sms_address(person: Person | None) -> str | None:
    """The phone an SMS goes to: the person's, if any."""
    return person.phone if person else None


def sms_text(subject: str, body: str) -> str:
    """One SMS: the subject and body run together, cut to MAX_SMS_CHARS."""
    joint = " " if subject.endswith(("?", "!", ".", ":")) else ". "  # "Which unit? This phone ..."
    return f"{subject}{joint}{body}"[:MAX_SMS_CHARS]
