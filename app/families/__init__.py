"""Family wallets (F1-F4): access grants on wallets (`access`), wallet groups and distributed
top-ups (`groups`), spend limits and per-person top-up caps (`limits`), and the alerts about a
shared wallet sent to whoever manages it (`alerts`).

Who may do what on a wallet is decided by `app.auth.scope.wallet_actions` (the one scope
check); these modules only write, each action audited with the acting user.
"""


class FamilyError(ValueError):
    """A family action refused; `errors` maps a form field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(errors.values()))
        self.errors = errors
