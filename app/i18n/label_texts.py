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
    # the estate settings catalogue (app/estates/settings_catalog.py): groups, labels, help, choices;
    # shown through the `translate` filter, so a percent sign is written %%
    N_('Payments'),
    N_('Largest single payment'),
    N_("Payments above this (top-up, SMS, EFT row, assignment) are refused, in the estate's currency."),
    N_('M-PESA paybill number'),
    N_("Told to tenants with a cut or restore notice, with the unit's account number. Empty: no M-PESA instructions."),
    N_('Trusted M-PESA senders'),
    N_("SMS sender ids whose confirmations may credit this estate's units, comma-separated. Empty: every sender trusted system-wide (MPESA_SENDERS); this can only narrow that list."),
    N_('Account number pattern'),
    N_("How new units' account numbers are made; payers quote them in M-PESA and EFT references. {seq} is the unit's place in the estate's sequence ({seq:04d} pads it to 4 digits), {code} the estate code; anything else may be letters, digits, - and /. A change applies to units numbered afterwards, and the sequence continues."),
    N_('Reversal approval threshold'),
    N_("Reversals and reassignments moving more than this amount (estate currency) wait for a second staff member's approval; 0 makes every one wait."),
    N_('Supply and tariffs'),
    N_('Water credit limit'),
    N_("Water is never cut off: when the water pocket is this far below zero, the meter is flagged for arrears. In the estate's currency, or kL when wallets hold units."),
    N_('Arrears and debt'),
    N_('Credit limit'),
    N_("How far below zero an electricity, hot water or solar pocket may go before credit control cuts it, in the estate's currency (0: cut at zero). A pocket's own limit, set on the unit's credit limits page, wins."),
    N_('Arrears recovery on top-up'),
    N_("What part of each top-up pays the unit's arrears (oldest first) before the rest reaches the pocket."),
    N_('Nothing'),
    N_('A percentage of each top-up'),
    N_('A fixed amount of each top-up'),
    N_('Recovery share (%%)'),
    N_('With percentage recovery: the share of each top-up that pays arrears.'),
    N_('Recovery amount'),
    N_('With fixed recovery: the amount of each top-up that pays arrears (never more than the top-up).'),
    N_('Restricted recovery share (%%)'),
    N_('Once the ladder restricts a debtor, this share of each top-up pays arrears (instead of the usual recovery).'),
    N_('Escalation ladder'),
    N_('Steps the daily arrears job takes, as days:action, comma-separated; actions are warn, restrict, suspend and escalate. Each step is applied once per spell in debt.'),
    N_('Write-off approval threshold'),
    N_("Write-offs of more than this amount (estate currency) wait for a second staff member's approval; 0 makes every one wait."),
    N_('Tariff notice (days)'),
    N_('Residents hear of a new tariff this many days before it starts; it is also the earliest start date staff can give a new version.'),
    N_('Statements and reports'),
    N_('Brand colour'),
    N_("The colour of the estate's statements and AGM audit reports."),
    N_('Loss threshold (%%)'),
    N_("The utility page marks a bulk meter's loss in red when more than this share of what it measured is not accounted for by unit meters."),
    N_('Vendors and devices'),
    N_('SparkMeter customer code'),
    N_("How a unit's SparkMeter customer code is formed, for the credit push and payments import: {unit} is the unit number, {serial} the meter's serial (e.g. C-{serial})."),
    N_('ThunderCloud sites'),
    N_("The ThunderCloud site ids whose exports are this estate's, comma-separated; a ThunderCloud backfill of the estate fetches only these. Empty: no ThunderCloud backfill for the estate."),
    N_('ChirpStack application'),
    N_("The ChirpStack application the estate's LoRaWAN meters belong to; relay commands are published to application/<this>/device/<DevEUI>/command/down."),
    N_('Demand threshold (kW)'),
    N_('When the bulk electricity meter draws more than this, the utility users and the heaviest consumers are warned. Empty: demand is not managed.'),
    N_('Demand restore level (kW)'),
    N_('Held supply returns once demand stays below this for the restore time. Empty: 90 %% of the threshold.'),
    N_('Demand restore time (minutes)'),
    N_('How long demand must stay below the restore level before held supply returns.'),
    N_('Hold supply over the demand threshold'),
    N_("Over the threshold, hold the heaviest consumers' electricity (never water) while credit control is on."),
    N_('Demand hold time (minutes)'),
    N_('How long a demand hold lasts at most; it lapses by itself after this.'),
    N_('Units held at most'),
    N_('The most units whose electricity is held in one demand event.'),
    N_('Who is held first'),
    N_('Heaviest consumers first, by their use over the last hour or the last day.'),
    N_('Heaviest over the last hour'),
    N_('Heaviest over the last day'),
    N_('Languages'),
    N_('Default language'),
    N_('Pages, emails, SMS and statements for people who have not chosen a language themselves.'),
    N_('English'),
    N_('Français'),
    N_('Sesotho'),
    N_('Currency symbol'),
    N_("The symbol people know the estate's currency by, where CLDR has none (e.g. M for the loti). Empty: the standard one."),
    N_('global setting'), N_('default'),
    # budget alert choices (app/models/budget_alerts.py), shown through `translate`
    N_('At most once a day'), N_('At most once a week'), N_('In the app'), N_('Email'), N_('SMS'),
    # revenue case statuses and demand event states (app/labels.py), shown on the utility pages
    N_('Investigating'), N_('Resolved'), N_('Warning sent'), N_('Supply held'), N_('Restored'),
    # issue 23: every text of app/labels.py (tests/i18n/test_label_kinds.py checks none is missing)
    # transaction
    N_('Settlement to a party'), N_('Debt written off'), N_('Shared solar'), N_('Settlement payout'),
    # job
    N_('Payment receipts'), N_('Tenant notice'), N_('Consumption profiles'), N_('Shared solar allocation'), N_('Historical backfill'), N_('Report subscriptions'), N_('API idempotency purge'), N_('Meter offline webhooks'), N_('Debt cohorts'),
    # correction_kind
    N_('Reversal'), N_('Reassignment to another unit'),
    # correction_status
    N_('Waiting for approval'), N_('Posted'), N_('Declined'),
    # vendor_reversal
    N_('Queued'), N_('Reversed at SparkMeter'), N_('Nothing to reverse there'),
    # account_kind
    N_('Wallet pocket'), N_('Payment clearing'), N_('Revenue'), N_('Units issued'), N_('Settlement party'), N_('Suspense'), N_('Refunds payable'), N_('Arrears'), N_("Owner's pocket"), N_('Bad debt'), N_('Top-up float'),
    # modbus_state
    N_('Answering'), N_('Not answering (timeout)'), N_('Answering nonsense'), N_('Cannot be reached'),
    # command_status
    N_('Sent, not yet acknowledged'), N_('Acknowledged'), N_('No acknowledgement'),
    # import_status
    N_('Imported'), N_('Already imported'), N_('Refused'),
    # refund_status
    N_('To pay'), N_('Paid'),
    # bulk_outcome
    N_('Credited'), N_('Skipped'),
    # anomaly_rule
    N_('Unusual day'), N_('Sudden change'), N_('Zero use (possible bypass)'), N_('Negative use'), N_('Purchases collapsed'),
    # party_role
    N_('Operator'), N_('Utility (bulk supplier)'), N_('Landlord'), N_('Other'),
    # rule_method
    N_('Percentage of revenue'), N_('Fixed amount a month'), N_('The remainder'),
    # webhook_status
    N_('Waiting to be sent'), N_('Delivered'), N_('Given up'),
    # backfill_source
    N_('Koios readings'), N_('ThunderCloud exports'),
    # backfill_status
    N_('Stopping after this day'), N_('Stopped'),
    # vendor_push
    N_('Waiting to be pushed'), N_('Pushed'), N_('Push failed'),
    # relay_state
    N_('On'), N_('Off'), N_('Unknown'),
    # sms_outcome
    N_('Payment'), N_('Duplicate'), N_('Ignored'), N_('Suspicious'),
    # arrears_source
    N_('move out'), N_('levy'), N_('migration'), N_('manual'),
    # arrears_status
    N_('open'), N_('paid'), N_('written off'),
    # reconciliation_check
    N_('Readings vs bills'), N_('Payments vs gateway records'), N_('M-PESA statement'), N_('Pushes vs Koios payments'), N_('Bulk vs units'), N_('Ledger verify'),
)
