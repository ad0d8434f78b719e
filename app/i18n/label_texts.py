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
    # labels of the owner, body-corporate and administration pages (session 8)
    # occupancy
    N_('Occupied'), N_('Vacant'), N_('Maintenance'),
    # period_status
    N_('Open'), N_('Closed'), N_('Locked'),
    # protocol
    N_('LoRaWAN (ChirpStack)'), N_('Direct MQTT'), N_('HTTP gateway'), N_('Modbus/RS485'), N_('SparkMeter'),
    # meter_role
    N_('Unit supply'), N_('Estate bulk supply'), N_('Solar generation'),
    # meter_state
    N_('In service'), N_('Replaced'),
    # denomination
    N_('Money'), N_('Units (kWh and kL)'),
    # role
    N_('Tenant'), N_('Managing agent'),
    # login_status
    N_('No login'), N_('Invited (no password yet)'), N_('Active'), N_('Deactivated'),
    # unit_link
    N_('Tenancy'), N_('Ownership'),
    # feature
    N_('Credit control'), N_('Monthly statements'), N_('Levies auto-deduct'),
    # import_kind
    N_('Units'), N_('People'), N_('Meters'), N_('Opening balances'), N_('Tenancies (move-ins)'),
    # import_batch
    N_('Reading the file'), N_('Preview (not committed)'), N_('Committing'), N_('Committed'),
    # import_action
    N_('New'), N_('Update'), N_('Unchanged'), N_('Rejected'),
    # job
    N_('Refresh from UISP'), N_('Koios readings import'), N_('Koios payments import'), N_('ThunderCloud import'), N_('Ledger verification'), N_('Budget alerts'), N_('Meter watch (frozen registers)'), N_('Relay holds that ran out'), N_('Reading partitions ahead'), N_('Tariff notices and activation'), N_('Credit push to SparkMeter'), N_('Pocket roll-ups'), N_('Email delivery'), N_('Ledger anchor email'), N_('Reversal at SparkMeter'), N_('Import preview'), N_('Import commit'), N_('Bulk top-up'), N_('Daily losses (bulk vs units)'), N_('Meter anomaly scores'), N_('Settlement run'), N_('Daily reconciliation'), N_('Levy run'), N_('Webhook delivery'), N_('Webhook retries'), N_('Arrears escalation ladder'),
    # job_status
    N_('Waiting to start'), N_('Running'), N_('Finished'),
    # meter_status
    N_('Online'), N_('Offline'), N_('Imported daily'), N_('Import overdue'),
    # alert
    N_('Register went backwards'), N_('Register rolled over'), N_('Spike'), N_('Gap in readings'), N_('Frozen register'), N_('Relay did not acknowledge'), N_('Water past its credit limit'), N_('No tariff in force'),
)
