"""All models, importable from one place (Alembic's autogenerate sees them all)."""
from app.models.base import Base, utcnow
from app.models.estate import (FEATURE_DEFAULTS, LIVE_FEATURES, Estate, FinancialPeriod, OccupancyChange,
                               Setting, Unit)
from app.models.ledger import Account, LedgerChain, LedgerTransaction, Posting, Wallet
from app.models.meter import Meter, Reading, canonical_serial
from app.models.metering import ConsumptionRollup, DeadLetter, MeterAlert, ReadingArchive, RelayCommand, TariffVersion  # noqa: F401,E501
from app.models.operations import AuditLog, JobRun, Notification
from app.models.sources import KoiosPayment, ThunderCloudExport, ThunderCloudHeartbeat, ThunderCloudPayment, UispClient, UispInvoice, UispPayment, UispService  # noqa: F401,E501
from app.models.people import Person, RoleGrant, Tenancy, UnitOwnership, User

__all__ = [
    "FEATURE_DEFAULTS", "LIVE_FEATURES", "Account", "AuditLog", "Base", "Estate", "FinancialPeriod",
    "JobRun",
    "LedgerChain", "LedgerTransaction", "Meter", "Notification", "OccupancyChange", "Person",
    "Posting", "Reading", "RoleGrant", "Setting", "Tenancy", "Unit", "UnitOwnership", "User",
    "Wallet", "canonical_serial", "utcnow",
]
from app.models.statements import Statement, StatementDelivery  # noqa: E402,F401
from app.models.payments import Payment, SmsMessage  # noqa: E402,F401
from app.models.budget_alerts import BudgetAlertSent, BudgetAlertSetting  # noqa: E402,F401
from app.models.ingest import IngestHeartbeat, ModbusDeviceStatus  # noqa: E402,F401
from app.models.reporting import PocketFlowTotal, PocketFlowWatermark  # noqa: E402,F401
from app.models.imports import ImportBatch, ImportRow  # noqa: E402,F401
from app.models.corrections import CaseNote, Correction  # noqa: E402,F401
from app.models.tariff import TariffClass  # noqa: E402,F401
from app.models.metering import RelayHold  # noqa: E402,F401
from app.models.arrears import ArrearsRecord  # noqa: E402,F401
from app.models.levies import LevyCharge, LevyDefinition  # noqa: E402,F401
from app.models.moves import BulkTopup, Refund  # noqa: E402,F401
# Utility layer (issue 19)
from app.models.utility import DemandEvent, EmissionFactor, LossDay, MeterAnomaly, RevenueCase  # noqa: E402,F401
from app.models.api import ApiKey, IdempotentRequest, WebhookAttempt, WebhookDelivery, WebhookEndpoint  # noqa: E402,F401
from app.models.families import FamilyAlertSent, SpendLimit, WalletGrant, WalletGroup, WalletGroupMember  # noqa: E402,F401
from app.models.families import WalletDistribution, WalletDistributionLeg  # noqa: E402,F401  issue 17
# settlement and daily reconciliation (issue 20)
from app.models.settlement import (MpesaStatementLine, ReconciliationResult, SettlementLine,  # noqa: E402,F401
                                   SettlementParty, SettlementRule, SettlementRuleSet, SettlementRun)
from app.models.debt import ArrearsEpisode, ArrearsTask, PaymentPlan, PocketCreditLimit, WriteOff  # noqa: E402,F401
from app.models.notices import Notice  # noqa: E402,F401  (issue 15: agents' notices)
from app.models.utility import SolarAllocation, SolarScheme  # noqa: E402,F401  (issue 19: shared solar)
from app.models.utility_figures import MeterProfile, ProfileRun  # noqa: E402,F401  (issue 19: stored profiles)
from app.models.cohorts import CohortMember, CohortSnapshot, DebtCohort  # noqa: E402,F401  (debt cohorts, issue 16)
# issue 22: historical backfills and report subscriptions
from app.models.backfills import SourceBackfill  # noqa: E402,F401
from app.models.subscriptions import ReportDelivery, ReportSubscription  # noqa: E402,F401
