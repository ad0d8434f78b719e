"""English texts shown through `label()`, the navigation and the usage grains, marked for the catalogues.

They are translated where they are shown (the `label` filter, base.html); `N_` only marks them,
so `make messages` extracts them. Regenerate the list when app/labels.py gains a kind pages show.
"""


def N_(text: str) -> str:
    return text


LABEL_TEXTS = (
    # app/statements/figures.py CATEGORY_LABELS (the PDF statement)
    N_('Top-ups'), N_('Standing charges'), N_('Levies'), N_('Adjustments'),
    N_('Electricity'),
    N_('Water'),
    N_('Hot water'),
    N_('Solar'),
    N_('Top-up'),
    N_('Use'),
    N_('Standing charge'),
    N_('Solar export credit'),
    N_('Adjustment'),
    N_('Correction'),
    N_('Levy'),
    N_('Settlement'),
    N_('Refund'),
    N_('Debt carried to arrears'),
    N_('Arrears payment'),
    N_('received'),
    N_('recorded at SparkMeter'),
    N_('reversed'),
    N_('waiting for PayFast'),
    N_('failed'),
    N_('cancelled'),
    N_('expired (not paid)'),
    N_('Received'),
    N_('Waiting for payment'),
    N_('Not matched to a unit'),
    N_('To confirm'),
    N_('Failed'),
    N_('Cancelled'),
    N_('Expired (never paid)'),
    N_('Reversed'),
    N_('Suspended for arrears'),
    N_('Spend limit reached'),
    N_('Demand management'),
    N_('Held by staff'),
    N_('Flat rate'),
    N_('Inclining blocks'),
    N_('Time of use'),
    N_('Low balance'),
    N_('Critical balance'),
    N_('High use'),
    N_('My unit'),
    N_('Family'),
    N_('Owner'),
    N_('Body corporate'),
    N_('Agent'),
    N_('Utility'),
    N_('Staff'),
    N_('Administration'),
    N_('Daily'),
    N_('Weekly'),
    N_('Monthly'),
)
