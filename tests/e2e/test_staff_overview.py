"""The staff Overview's audit log at desktop and phone widths: every column readable."""
from __future__ import annotations

import pytest

from tests.e2e.test_browser import DESKTOP, PHONE, page_fits, sign_in

pytestmark = pytest.mark.e2e


def test_audit_log_change_column_has_room_at_1280_and_stacks_at_360(live_server, open_page, shots):
    for name, viewport in (("1280", DESKTOP), ("360", PHONE)):
        page = open_page(viewport)
        sign_in(page, live_server, "staff")
        page.goto(live_server.url + "/staff/")
        page_fits(page)
        layout = page.evaluate("""() => {
            const table = [...document.querySelectorAll('table')]
                .find(t => [...t.querySelectorAll('th')].some(th => th.innerText.trim() === 'Change'));
            const wrap = table.closest('.table-wrap');
            const cells = [...table.querySelectorAll('tbody td[data-label="Change"]')];
            const texts = cells.map(c => c.querySelector('small')).filter(Boolean);
            const edge = wrap.getBoundingClientRect().right + 1;
            return {table: table.scrollWidth, wrap: wrap.clientWidth, texts: texts.length,
                    change: Math.min(...texts.map(t => t.closest('td').getBoundingClientRect().width)),
                    hidden: texts.filter(t => t.getBoundingClientRect().right > edge).length};
        }""")
        # Nothing of the table is scrolled out of sight, and the change text is at least ~12
        # characters wide (it was one or two, clipped by the wrap, at 1280 px).
        assert layout["table"] <= layout["wrap"] + 1, layout
        assert layout["texts"] > 0 and layout["hidden"] == 0 and layout["change"] >= 120, layout
        page.screenshot(path=str(shots / f"staff-overview-{name}.png"), full_page=True)
