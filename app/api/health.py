"""GET /healthz: database, redis, mqtt and worker status as JSON (fixed interface)."""
import socket
from urllib.parse import urlparse

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from app.extensions import csrf, db

bp = Blueprint("health", __name__)


def check_database() -> dict:
    try:
        db.session.execute(text("SELECT 1"))
        return {"status": "ok", "dialect": db.engine.dialect.name}
    except Exception as error:  # any failure is a health fact, not a crash
        db.session.rollback()
        return {"status": "error", "error": type(error).__name__}


def check_redis_and_workers() -> tuple[dict, dict]:
    url = current_app.config.get("REDIS_URL")
    if not url:
        return {"status": "not_configured"}, {"status": "inline", "detail": "jobs run in the web process"}
    try:
        from redis import Redis
        from rq import Worker

        connection = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        connection.ping()
        workers = Worker.all(connection=connection)
        worker = {"status": "ok" if workers else "none_running", "count": len(workers)}
        return {"status": "ok"}, worker
    except Exception as error:
        return {"status": "error", "error": type(error).__name__}, {"status": "unknown"}


def check_mqtt() -> dict:
    url = current_app.config.get("MQTT_URL")
    if not url:
        return {"status": "not_configured"}
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 1883), timeout=1):
            return {"status": "ok"}
    except OSError as error:
        return {"status": "error", "error": type(error).__name__}


@bp.get("/healthz")
@csrf.exempt
def healthz():
    database = check_database()
    redis, worker = check_redis_and_workers()
    mqtt = check_mqtt()
    healthy = database["status"] == "ok" and "error" not in (redis["status"], mqtt["status"])
    body = {"status": "ok" if healthy else "degraded", "database": database, "redis": redis,
            "mqtt": mqtt, "worker": worker}
    return jsonify(body), 200 if healthy else 503
