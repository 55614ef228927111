"""A newcomer's first visit, in a real headless Chromium against a real hub: onboarding, the
live table of demo entities, log out, a wrong password, log in again, and a session that
survives reloads and expired access tokens."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

try:
    from playwright.async_api import expect
except ImportError:  # the `browser` fixture skips (or fails in CI) with the reason
    expect = None

SITE = "Maple Farm"
USERNAME = "ada"
PASSWORD = "a long passphrase"
STORE_KEY = "hub_tokens"  # where app.js keeps the tokens in localStorage
CELSIUS = re.compile(r"^-?\d+(\.\d+)? °C$")  # a value with its unit


def row(page: Any, name: str) -> Any:
    """The table row of the entity called `name` (exactly)."""
    return page.locator("#states tbody tr").filter(has=page.get_by_text(name, exact=True))


async def onboard(page: Any, base: str) -> None:
    """Open the hub as a newcomer and create the owner account from the onboarding form."""
    await page.goto(base)
    form = page.locator("#onboarding")
    await expect(form).to_be_visible()
    await expect(page.locator("#login")).to_be_hidden()
    await expect(page.locator("#states")).to_be_hidden()
    await form.get_by_label("Your name").fill("Ada Lovelace")
    await form.get_by_label("Username").fill(USERNAME)
    await form.get_by_label("Password").fill(PASSWORD)
    await form.get_by_label("Site name").fill(SITE)
    await form.get_by_role("button").click()
    await expect(page.locator("#states")).to_be_visible()
    await expect(form).to_be_hidden()


async def stored_tokens(page: Any) -> dict[str, Any] | None:
    raw = await page.evaluate(f"localStorage.getItem({STORE_KEY!r})")
    return None if raw is None else json.loads(raw)


async def set_stored_tokens(page: Any, **changes: Any) -> None:
    await page.evaluate(
        """([key, changes]) => {
            localStorage.setItem(key, JSON.stringify({...JSON.parse(localStorage.getItem(key)), ...changes}));
        }""",
        [STORE_KEY, changes],
    )


async def test_newcomer_onboards_sees_live_values_logs_out_and_back_in(
    page: Any, e2e_hub: Any, tmp_path: Path
) -> None:
    hub = e2e_hub.hub
    assert not hub.auth.onboarded  # nobody has been here yet

    await onboard(page, e2e_hub.base)

    # The hub knows its owner and its site now; the page says where we are.
    owner = hub.auth.get_user_by_username(USERNAME)
    assert owner is not None and owner.is_owner and owner.name == "Ada Lovelace"
    assert hub.config["name"] == SITE
    await expect(page.locator("#site-name")).to_have_text(SITE)
    await expect(page).to_have_title(SITE)
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()

    # A table of the demo entities, with their values and units.
    temperature = row(page, "Weather station Temperature")
    await expect(temperature).to_have_count(1)
    await expect(temperature.locator("td.state")).to_have_text(CELSIUS)
    for name in ("Weather station Humidity", "Power meter Power", "Living room light", "Heater Power"):
        await expect(row(page, name)).to_have_count(1)
    await expect(page.locator("#states tbody tr")).to_have_count(len(hub.states))

    # Values follow the devices without a reload.
    value = temperature.locator("td.state")
    first = await value.inner_text()
    await expect(value).not_to_have_text(first)
    await expect(value).to_have_text(CELSIUS)

    # Log out: the login form, no tokens left in the browser, the refresh token revoked.
    async with page.expect_response(lambda r: r.url.endswith("/auth/token")) as revoked:
        await page.get_by_role("button", name="Log out").click()
    assert (await revoked.value).ok
    login = page.locator("#login")
    await expect(login).to_be_visible()
    await expect(page.locator("#states")).to_be_hidden()
    await expect(page.get_by_role("button", name="Log out")).to_be_hidden()
    assert await stored_tokens(page) is None
    assert hub.auth.refresh_tokens(owner) == []

    # A wrong password: an error, and still the login form.
    await login.get_by_label("Username").fill(USERNAME)
    await login.get_by_label("Password").fill("not the passphrase")
    await login.get_by_role("button", name="Log in").click()
    message = page.get_by_role("alert")
    await expect(message).to_be_visible()
    await expect(message).to_contain_text("Wrong username or password")
    await expect(login).to_be_visible()
    await expect(page.locator("#states")).to_be_hidden()

    # The right one: the table again, and the error gone.
    await login.get_by_label("Password").fill(PASSWORD)
    await login.get_by_role("button", name="Log in").click()
    await expect(page.locator("#states")).to_be_visible()
    await expect(message).to_be_hidden()
    await expect(page.locator("#site-name")).to_have_text(SITE)
    await expect(row(page, "Weather station Temperature").locator("td.state")).to_have_text(CELSIUS)

    # Readable on a laptop and on a phone: nothing wider than the screen.
    shot = tmp_path / "hub-page.png"
    await page.screenshot(path=shot, full_page=True)
    await page.set_viewport_size({"width": 390, "height": 844})
    await expect(row(page, "Weather station Temperature")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    phone_shot = tmp_path / "hub-page-phone.png"
    await page.screenshot(path=phone_shot, full_page=True)
    for source in (shot, phone_shot):
        shutil.copy(source, Path("/tmp") / source.name)  # for a person to look at


async def test_session_survives_reloads_and_expired_access_tokens(page: Any, e2e_hub: Any) -> None:
    await onboard(page, e2e_hub.base)
    first = await stored_tokens(page)
    assert first is not None and first["access_token"] and first["refresh_token"]

    # A reload keeps the session: no login form.
    await page.reload()
    await expect(page.locator("#states")).to_be_visible()
    await expect(page.locator("#site-name")).to_have_text(SITE)
    await expect(page.locator("#login")).to_be_hidden()

    # The access token has expired: the page gets a new one with the refresh token.
    await set_stored_tokens(page, expires_at=0)
    async with page.expect_request(
        lambda r: r.url.endswith("/auth/token") and "grant_type=refresh_token" in (r.post_data or "")
    ):
        await page.reload()
    await expect(page.locator("#states")).to_be_visible()
    await expect(row(page, "Weather station Temperature")).to_have_count(1)
    await expect(page.locator("#login")).to_be_hidden()
    second = await stored_tokens(page)
    assert second["expires_at"] > time.time() * 1000  # a fresh one
    assert second["refresh_token"] == first["refresh_token"]

    # The hub refuses the access token although the browser thinks it is still good (a clock
    # off, say): the page refreshes it once and goes on.
    await set_stored_tokens(page, access_token="not-a-token")
    await page.reload()
    await expect(page.locator("#states")).to_be_visible()
    await expect(row(page, "Weather station Temperature")).to_have_count(1)
    await expect(page.get_by_role("alert")).to_be_hidden()
    third = await stored_tokens(page)
    assert third["access_token"] != "not-a-token"

    # The refresh token was revoked elsewhere: back to the login form, with a word why.
    owner = e2e_hub.hub.auth.get_user_by_username(USERNAME)
    for token in e2e_hub.hub.auth.refresh_tokens(owner):
        e2e_hub.hub.auth.revoke_refresh_token(token.id)
    await expect(page.locator("#login")).to_be_visible()
    await expect(page.locator("#states")).to_be_hidden()
    assert await stored_tokens(page) is None


async def test_page_rides_out_a_hub_it_cannot_reach(page: Any, e2e_hub: Any) -> None:
    await onboard(page, e2e_hub.base)
    message = page.get_by_role("alert")
    values = row(page, "Weather station Temperature").locator("td.state")

    # The polls fail for a while (the hub restarts, Wi-Fi drops): a word, and the session kept.
    await page.route("**/api/states", lambda route: route.abort())
    await expect(message).to_contain_text("Cannot update the values")
    await expect(page.locator("#states")).to_be_visible()
    assert await stored_tokens(page) is not None
    await page.unroute("**/api/states")
    before = await values.inner_text()
    await expect(message).to_be_hidden()
    await expect(values).not_to_have_text(before)

    # The page is opened while the hub is away, its access token expired: it says so, keeps the
    # refresh token, and shows the table once the hub answers.
    await set_stored_tokens(page, expires_at=0)
    await page.route("**/auth/token", lambda route: route.abort())
    await page.reload()
    await expect(message).to_contain_text("Cannot reach the hub")
    assert (await stored_tokens(page) or {}).get("refresh_token")
    await page.unroute("**/auth/token")
    await expect(page.locator("#states")).to_be_visible()
    await expect(message).to_be_hidden()
    await expect(values).to_have_text(CELSIUS)
