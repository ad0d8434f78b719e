"""M-PESA confirmation parsing (P2): the documented message, drifted variants, and garbage."""
from decimal import Decimal

import pytest

from app.payments.mpesa_sms import NotAPayment, parse_confirmation

DOCUMENTED = ("5L956Z39DJ Confirmed. on 9/12/18 at 8:59 AM M1.00 received from 26657755403 - "
              "Tamer Teker 26657755403.New M-Pesa balance is M387.80 Reference: 315103084.")

# (message, txn id, amount, currency, phone, sender, reference)
VARIANTS = [
    (DOCUMENTED, "5L956Z39DJ", "1.00", "LSL", "26657755403", "Tamer Teker", "315103084"),
    ("5L956Z39DK confirmed. on 19/12/18 at 12:01 PM M1,250.00 received from 26657755403 - "
     "Tamer Teker 26657755403.New M-Pesa balance is M1,637.80 Reference: A12.",
     "5L956Z39DK", "1250.00", "LSL", "26657755403", "Tamer Teker", "A12"),
    ("6A111Z39DJ Confirmed. M20.00 received from 26658001122 - Lerato Mokoena 26658001122."
     "New M-Pesa balance is M407.80 Reference: B7.",
     "6A111Z39DJ", "20.00", "LSL", "26658001122", "Lerato Mokoena", "B7"),
    ("5L956Z39DJ   Confirmed.\non 9/12/18 at 8:59 AM\nM1.00 received from 26657755403 - Tamer Teker "
     "26657755403.\nNew M-Pesa balance is M387.80\nReference: 315103084.",
     "5L956Z39DJ", "1.00", "LSL", "26657755403", "Tamer Teker", "315103084"),
    ("QK12ABC3DE Confirmed. Ksh1,500.00 received from JOHN DOE 254712345678 on 12/3/24 at 10:15 AM. "
     "Account Number A12 New Utility balance is Ksh50,000.00.",
     "QK12ABC3DE", "1500.00", "KES", "254712345678", "JOHN DOE", "A12"),
    ("QK98XYZ123 Confirmed. You have received Ksh200.00 from JANE WANJIKU 0712345678 on 1/2/24 "
     "at 3:04 PM New M-PESA balance is Ksh1,234.00.",
     "QK98XYZ123", "200.00", "KES", "0712345678", "JANE WANJIKU", None),
    ("7B222Z39DJ Confirmed. on 2/1/19 at 7:10 PM M35.50 received from 26650001234 - Palesa Nthati "
     "26650001234.New M-Pesa balance is M12.00 Ref: EST1-A12.",
     "7B222Z39DJ", "35.50", "LSL", "26650001234", "Palesa Nthati", "EST1-A12"),
    ("8C333Z39DJ Confirmed. on 2/1/19 at 7:10 PM M50 received from +26650001234 - Palesa Nthati."
     " New M-Pesa balance is M62.00 Reference: 000023022673.",
     "8C333Z39DJ", "50", "LSL", "26650001234", "Palesa Nthati", "000023022673"),
    ("QL55XYZ999 Confirmed. Ksh3,000.00 received from PETER OTIENO 254700111222 on 5/5/24 at 9:00 AM."
     " Acc. No. 12345 New Utility balance is Ksh9,000.00.",
     "QL55XYZ999", "3000.00", "KES", "254700111222", "PETER OTIENO", "12345"),
    ("9D444Z39DJ Confirmed. M20.00 received from 26650000000 - Lerato Mokoena. Reference: A5. "
     "New M-Pesa balance is M400.00.",
     "9D444Z39DJ", "20.00", "LSL", "26650000000", "Lerato Mokoena", "A5"),
    ("1E555Z39DJ Confirmed on 3/3/19 at 6:00 AM M100.00 received from 26651112222 - Thabo "
     "26651112222. New M-Pesa balance is M500.00 Reference:C-4.",
     "1E555Z39DJ", "100.00", "LSL", "26651112222", "Thabo", "C-4"),
    ("QM77ABC000 Confirmed. Ksh 750.00 received from MARY ATIENO 254711000999 on 6/6/24 at 1:00 PM. "
     "Account Number: unit7 New Utility balance is Ksh1,000.00.",
     "QM77ABC000", "750.00", "KES", "254711000999", "MARY ATIENO", "UNIT7"),
]


@pytest.mark.parametrize("text,txn,amount,currency,phone,sender,reference", VARIANTS,
                         ids=[v[1] + "-" + str(i) for i, v in enumerate(VARIANTS)])
def test_confirmations_are_read(text, txn, amount, currency, phone, sender, reference):
    parsed = parse_confirmation(text)
    assert (parsed.txn_id, parsed.amount, parsed.currency, parsed.phone, parsed.sender,
            parsed.reference) == (txn, Decimal(amount), currency, phone, sender, reference)


@pytest.mark.parametrize("text,reason", [
    ("", "empty message"),
    ("Hello, is the water off again at block C?", "not an incoming payment confirmation"),
    ("5L956Z39DJ Confirmed. M10.00 sent to 26657755403 - Tamer Teker on 9/12/18.", "not an incoming"),
    ("Confirmed. M10.00 received from 26657755403.", "no transaction id"),
    ("5L956Z39DJ Confirmed. You have received airtime from 26657755403.", "no amount"),
    ("5L956Z39DJ Confirmed. M10.00 received. New M-Pesa balance is M5.00", "neither a phone"),
    ("5L956Z39DJ Confirmed. M0.00 received from 26657755403 - X. Reference: A1.", "not positive"),
])
def test_other_messages_are_refused_with_a_reason(text, reason):
    with pytest.raises(NotAPayment, match=reason):
        parse_confirmation(text)
