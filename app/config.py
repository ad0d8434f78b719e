"""Configuration: every setting comes from an environment variable with a safe dev default."""
import os
import secrets
from pathlib import Path

INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class Config:
    """Defaults for `make run`: SQLite, inline jobs, email to the log."""

    SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_hex(32)
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'meterwise.db'}"
    )
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = os.environ.get("REDIS_URL", "")  # empty: jobs run inline
    MQTT_URL = os.environ.get("MQTT_URL", "")  # empty: MQTT off
    # Ingest worker (workers/mqtt_ingest.py, issue 3); it connects to 127.0.0.1:1883 when MQTT_URL is empty.
    MQTT_CLIENT_ID = os.environ.get("MQTT_CLIENT_ID", "meterwise-ingest-1")
    MQTT_SHARED = _env_bool("MQTT_SHARED", False)  # `$share/<group>/...`: several workers split the load
    MQTT_SHARE_GROUP = os.environ.get("MQTT_SHARE_GROUP", "meterwise")
    MQTT_TOPIC_PREFIX = os.environ.get("MQTT_TOPIC_PREFIX", "")
    INGEST_BATCH_SIZE = int(os.environ.get("INGEST_BATCH_SIZE", "500"))
    INGEST_BATCH_WAIT_MS = int(os.environ.get("INGEST_BATCH_WAIT_MS", "50"))
    INGEST_HEARTBEAT_SECONDS = float(os.environ.get("INGEST_HEARTBEAT_SECONDS", "5"))
    INGEST_LANES = int(os.environ.get("INGEST_LANES", "1"))  # batching threads per worker, split by meter
    # Where the ingest worker writes a message it could not even dead-letter, then acknowledges it.
    INGEST_SPOOL_PATH = os.environ.get("INGEST_SPOOL_PATH", str(INSTANCE_DIR / "ingest-spool.jsonl"))
    READINGS_ARCHIVE_DIR = os.environ.get("READINGS_ARCHIVE_DIR", str(INSTANCE_DIR / "archive"))  # M8
    INGEST_WORKERS_EXPECTED = int(os.environ.get("INGEST_WORKERS_EXPECTED", "0"))  # /healthz degrades below
    MAIL_URL = os.environ.get("MAIL_URL", "")  # empty: emails are written to the log
    MAIL_FROM = os.environ.get("MAIL_FROM", "Meterwise <no-reply@meterwise.local>")
    # Where the daily ledger anchors (each estate's chain head) are emailed; empty: not sent.
    LEDGER_ANCHOR_EMAIL = os.environ.get("LEDGER_ANCHOR_EMAIL", "")
    PUBLIC_URL = os.environ.get("PUBLIC_URL", "http://127.0.0.1:5000")

    MAX_CONTENT_LENGTH = int(os.environ.get("MAX_CONTENT_LENGTH", 16 * 1024 * 1024))  # uploads, webhooks
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", False)
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    PERMANENT_SESSION_LIFETIME = 60 * 60 * 8

    WTF_CSRF_TIME_LIMIT = None  # token lives as long as the session
    RATELIMIT_STORAGE_URI = os.environ.get("RATELIMIT_STORAGE_URI", "memory://")
    RATELIMIT_HEADERS_ENABLED = True
    API_RATE_LIMIT_PER_HOUR = int(os.environ.get("API_RATE_LIMIT_PER_HOUR", "1000"))  # issue 21: per key
    API_RATELIMIT_STORAGE_URI = os.environ.get("API_RATELIMIT_STORAGE_URI", "")  # empty: RATELIMIT_STORAGE_URI
    WEBHOOKS_ALLOW_PRIVATE_TARGETS = _env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", False)  # issue 21
    LOGIN_RATE_LIMIT = os.environ.get("LOGIN_RATE_LIMIT", "5 per minute;30 per hour")
    INVITE_MAX_AGE_SECONDS = int(os.environ.get("INVITE_MAX_AGE_SECONDS", 7 * 24 * 3600))
    PASSWORD_RESET_MAX_AGE_SECONDS = int(os.environ.get("PASSWORD_RESET_MAX_AGE_SECONDS", 3600))
    UISP_URL = os.environ.get("UISP_URL", "http://127.0.0.1:5102/crm/api/v1.0")  # sources: UISP CRM
    UISP_APP_KEY = os.environ.get("UISP_APP_KEY", "dev-uisp-key")
    UISP_TIMEOUT = float(os.environ.get("UISP_TIMEOUT", "10"))
    UISP_RETRIES = int(os.environ.get("UISP_RETRIES", "4"))
    UISP_BACKOFF = float(os.environ.get("UISP_BACKOFF", "0.5"))
    UISP_PAGE_SIZE = int(os.environ.get("UISP_PAGE_SIZE", "1000"))
    UISP_STALE_AFTER_HOURS = int(os.environ.get("UISP_STALE_AFTER_HOURS", "24"))
    # The scheduled whole-system UISP refresh (app/job_schedule.py): every N hours, 1-24.
    UISP_REFRESH_HOURS = int(os.environ.get("UISP_REFRESH_HOURS", "6"))
    # GET /metrics (Prometheus text format); off (404) unless set here or by the `metrics_enabled` setting.
    METRICS_ENABLED = _env_bool("METRICS_ENABLED", False)
    # When set, /metrics also needs `Authorization: Bearer <METRICS_TOKEN>` (Prometheus' bearer_token);
    # without it the endpoint is for a scraper on a private network only.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
    # Modbus poller (workers/modbus_poller.py, M9): the TOML register map and the poll defaults.
    MODBUS_MAP_PATH = os.environ.get("MODBUS_MAP_PATH", str(INSTANCE_DIR / "modbus.toml"))
    MODBUS_TIMEOUT = float(os.environ.get("MODBUS_TIMEOUT", "2"))
    KOIOS_ORGANIZATION = os.environ.get("KOIOS_ORGANIZATION", "org-emulated")  # sources: Koios v2 data
    KOIOS_TIMEOUT = float(os.environ.get("KOIOS_TIMEOUT", "30"))
    THUNDERCLOUD_EXPORT_DIR = os.environ.get("THUNDERCLOUD_EXPORT_DIR", str(INSTANCE_DIR / "thundercloud"))
    THUNDERCLOUD_PAYMENT_THRESHOLD = os.environ.get("THUNDERCLOUD_PAYMENT_THRESHOLD", "0.50")
    THUNDERCLOUD_RATE_PER_KWH = os.environ.get("THUNDERCLOUD_RATE_PER_KWH", "2.50")
    THUNDERCLOUD_URL = os.environ.get("THUNDERCLOUD_URL", "http://127.0.0.1:5104")  # empty: folder only
    THUNDERCLOUD_TOKEN = os.environ.get("THUNDERCLOUD_TOKEN", "")
    THUNDERCLOUD_SITES = os.environ.get("THUNDERCLOUD_SITES", "S1,S2")  # comma-separated site ids to fetch
    THUNDERCLOUD_FETCH_DAYS = int(os.environ.get("THUNDERCLOUD_FETCH_DAYS", "3"))
    THUNDERCLOUD_TIMEOUT = float(os.environ.get("THUNDERCLOUD_TIMEOUT", "30"))
    THUNDERCLOUD_BACKOFF = float(os.environ.get("THUNDERCLOUD_BACKOFF", "0.5"))
    # Payments (issue 4). PayFast defaults point at the local emulator (tests/emulators/payfast.py).
    PAYFAST_MERCHANT_ID = os.environ.get("PAYFAST_MERCHANT_ID", "10000100")
    PAYFAST_MERCHANT_KEY = os.environ.get("PAYFAST_MERCHANT_KEY", "46f0cd694581a")
    PAYFAST_PASSPHRASE = os.environ.get("PAYFAST_PASSPHRASE", "meterwise-dev-passphrase")
    PAYFAST_PROCESS_URL = os.environ.get("PAYFAST_PROCESS_URL", "http://127.0.0.1:5101/eng/process")
    PAYFAST_VALIDATE_URL = os.environ.get("PAYFAST_VALIDATE_URL", "http://127.0.0.1:5101/eng/query/validate")
    PAYFAST_VALID_SOURCES = os.environ.get("PAYFAST_VALID_SOURCES", "127.0.0.1,www.payfast.co.za,"
                                           "sandbox.payfast.co.za,w1w.payfast.co.za,w2w.payfast.co.za")
    # The largest single payment on any path (estate setting `payment_max_amount` overrides it).
    PAYMENT_MAX_AMOUNT = os.environ.get("PAYMENT_MAX_AMOUNT", "50000")
    # A PayFast checkout with no ITN after this long shows as expired (a late ITN still credits).
    CHECKOUT_EXPIRY_MINUTES = int(os.environ.get("CHECKOUT_EXPIRY_MINUTES", "60"))
    SMS_GATEWAY_USER = os.environ.get("SMS_GATEWAY_USER", "gateway")
    SMS_GATEWAY_PASSWORD = os.environ.get("SMS_GATEWAY_PASSWORD", "")  # empty: the endpoint refuses all
    # Only SMS from these sender ids may credit (case-insensitive); see app/payments/mpesa_sms.py.
    MPESA_SENDERS = os.environ.get("MPESA_SENDERS", "MPESA,M-PESA")
    KOIOS_URL = os.environ.get("KOIOS_URL", "http://127.0.0.1:5103")
    KOIOS_API_KEY = os.environ.get("KOIOS_API_KEY", "")
    KOIOS_API_SECRET = os.environ.get("KOIOS_API_SECRET", "")


class ProductionConfig(Config):
    """Production: secrets must be provided, cookies are secure."""

    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True
    HSTS_MAX_AGE = int(os.environ.get("HSTS_MAX_AGE", 365 * 24 * 3600))  # Strict-Transport-Security


class TestConfig(Config):
    """Tests: real PostgreSQL and Redis on loopback, a database of their own."""

    TESTING = True
    SECRET_KEY = "test-secret"
    SQLALCHEMY_DATABASE_URI = os.environ.get(
        "TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/meterwise_test"
    )
    REDIS_URL = ""  # tests that need Redis set it themselves
    MQTT_URL = os.environ.get("TEST_MQTT_URL", "mqtt://127.0.0.1:1883")
    RATELIMIT_STORAGE_URI = "memory://"
    THUNDERCLOUD_SITES = ""  # no fetching from the dev emulator's port; tests serve their own
    WEBHOOKS_ALLOW_PRIVATE_TARGETS = True  # issue 21: test receivers listen on loopback


CONFIGS = {"dev": Config, "production": ProductionConfig, "test": TestConfig}
