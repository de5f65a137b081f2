"""The review app in a real browser: Debian's chromium, headless, driven by selenium (no browser download).

Open the app on a graded class, override an answer, grade a group, reload and see both; edit the
rubric, regrade from the app, and see them survive. GRADER_SCREENSHOTS=DIR saves the pages shown
in the README (docs/img).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1600",
]

if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    if os.environ.get("CI"):
        raise RuntimeError(
            "CI needs chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)"
        )
    pytest.skip(
        "chromium / chromedriver not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )


@pytest.fixture
def browser(tmp_path, monkeypatch):
    monkeypatch.setenv("SE_OFFLINE", "true")  # selenium never fetches a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture
def app_url(class_copy):
    import uvicorn

    from grader.review.app import create_app
    from grader.review.workspace import Workspace

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(
        uvicorn.Config(create_app(Workspace(class_copy / "out")), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=30)


def _shot(driver, name: str) -> None:  # noqa: ANN001
    target = os.environ.get("GRADER_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(Path(target) / name))


def _answer(driver, student: str):  # noqa: ANN001, ANN202
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, f"a-{student}")


def test_override_and_group_in_the_browser_survive_reload_and_a_regrade_with_an_edited_rubric(
    browser, app_url, class_copy
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(app_url + "/")
    browser.find_element(By.LINK_TEXT, "q3.a").click()
    assert "q3.a" in browser.title

    lee = _answer(browser, "lee")
    points = lee.find_element(By.CSS_SELECTOR, "form input[name=points]")
    points.clear()
    points.send_keys("1.5")
    lee.find_element(By.CSS_SELECTOR, "form input[name=comment]").send_keys("Momentum still helps on a convex loss.")
    lee.find_element(By.CSS_SELECTOR, "button.set").click()
    WebDriverWait(browser, 60).until(ec.staleness_of(lee))  # the form posts, and the part's page loads again

    kims_group = (By.XPATH, "//section[contains(@class,'group')][.//article[@id='a-kim']]")
    group = WebDriverWait(browser, 60).until(ec.presence_of_element_located(kims_group))
    assert group.find_element(By.ID, "a-kimcopy")  # the copy is in kim's group
    group.find_element(By.CSS_SELECTOR, ".groupform input[name=points]").send_keys("4.5")
    group.find_element(By.CSS_SELECTOR, ".groupform input[name=comment]").send_keys("Graded as a group.")
    group.find_element(By.CSS_SELECTOR, "button.set-group").click()
    WebDriverWait(browser, 60).until(ec.staleness_of(group))

    def check() -> None:
        lee = _answer(browser, "lee")
        assert "1.5 / 5" in lee.find_element(By.CSS_SELECTOR, ".points").text
        assert "TA overridden" in lee.text and "Momentum still helps on a convex loss." in lee.text
        for sid in ("kim", "kimcopy"):
            card = _answer(browser, sid)
            assert "4.5 / 5" in card.find_element(By.CSS_SELECTOR, ".points").text and "Graded as a group." in card.text

    browser.refresh()
    check()
    _shot(browser, "review.png")

    q3 = class_copy / "rubrics" / "q3.yaml"
    q3.write_text(q3.read_text().replace("hint: ", "hint: Look again. ", 1))
    browser.get(app_url + "/")
    browser.find_element(By.ID, "regrade").click()
    WebDriverWait(browser, 600, poll_frequency=1).until(
        lambda d: d.find_elements(By.ID, "moved") or d.find_elements(By.CSS_SELECTOR, "p.error")
    )
    assert not browser.find_elements(By.CSS_SELECTOR, "p.error"), browser.find_element(By.CSS_SELECTOR, "p.error").text
    assert "Regraded with 3 TA grade(s) as exemplars" in browser.find_element(By.ID, "moved").text
    browser.get(app_url + "/part/q3.a")
    check()

    browser.get(app_url + "/report")
    WebDriverWait(browser, 60).until(ec.presence_of_element_located((By.TAG_NAME, "img")))
    assert len(browser.find_elements(By.TAG_NAME, "img")) > 10
    assert "3 of" in browser.find_element(By.XPATH, "//h2[text()='Review progress']/following-sibling::p").text
    _shot(browser, "class-report.png")
