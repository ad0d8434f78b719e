"""NB-IoT meters (M2) through the real pipeline: over MQTT's topic and as CoAP-relayed JSON posted
to the HTTP ingest, both billed like any other reading."""
import json

from sqlalchemy import select

from app.metering.api_keys import issue_api_key
from app.metering.ingest import Message, ingest
from app.models import Reading
from tests.metering.conftest import at, balance

IMEI = "867724030012345"


def uplink(moment, wh: int) -> dict:
    return {"imei": IMEI, "serial": "000023022673", "ts": int(moment.timestamp()),
            "data": {"energy_wh": wh, "battery_v": 3.6}, "radio": {"rsrp": -101}}


def test_nbiot_readings_over_mqtt_and_http_are_stored_and_billed(app, session, metered):
    report = ingest(session, [Message(f"nbiot/{IMEI}/up", json.dumps(uplink(at(90), 100_000)).encode())])
    session.commit()
    assert (report.accepted, report.dead_letters) == (1, [])
    _row, key = issue_api_key(session, "NB-IoT CoAP relay")
    response = app.test_client().post("/api/v1/readings", json=uplink(at(60), 101_500), headers={"X-API-Key": key})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert [r.register for r in session.scalars(select(Reading).order_by(Reading.taken_at))] == [100, 101.5]
    assert balance(session, metered.pocket) == 100 - 3  # 1.5 kWh at R2.00
