"""The student page in headless Chromium (Debian's chromium and chromium-driver, driven by selenium)
against the live tutor: ask, watch the answer stream in, open a citation; MCQ mode. Saves screenshots."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.server import SAMPLE_COURSE_NAME, LiveServer

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 240


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("Chromium or chromedriver is missing (apt-get install chromium chromium-driver).")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1100,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, what: str, timeout_s: float = WAIT_S, interval_s: float = 0.05):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval_s)
    raise AssertionError(f"Timed out after {timeout_s:.0f} s waiting for {what}.")


def open_page(browser, server: LiveServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/")
    wait_for(lambda: SAMPLE_COURSE_NAME in [o.get_attribute("value") for o in
                                            browser.find_elements(By.CSS_SELECTOR, "#course option")],
             "the course list")


def test_student_asks_sees_the_answer_stream_in_and_opens_a_citation(browser, primary_tutor, tmp_path: Path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, primary_tutor)
    Select(browser.find_element(By.ID, "course")).select_by_value(SAMPLE_COURSE_NAME)
    question = "What is the coefficient of friction of rubber on dry concrete?"
    browser.find_element(By.ID, "question").send_keys(question)
    browser.find_element(By.ID, "ask-button").click()
    answer = browser.find_element(By.ID, "answer")
    wait_for(lambda: "streaming" in answer.get_attribute("class"), "the answer to start")
    seen_while_streaming = set()
    while "streaming" in answer.get_attribute("class"):
        seen_while_streaming.add(answer.text)
        time.sleep(0.03)
    status = wait_for(lambda: browser.find_element(By.ID, "status").text, "the status line")
    assert status.startswith("Answered"), status
    partial = {text for text in seen_while_streaming if text and text != answer.text}
    assert partial, "no partial answer was shown: the answer did not stream in"
    assert answer.text.strip()
    citations = browser.find_elements(By.CSS_SELECTOR, "#citations button")
    assert citations and "mechanics.pdf" in citations[0].text
    target = next(c for c in citations if "p. 3" in c.text)
    target.click()
    detail = browser.find_element(By.ID, "citation-detail")
    assert detail.is_displayed()
    assert "mechanics.pdf" in browser.find_element(By.ID, "detail-title").text
    assert browser.find_element(By.ID, "detail-meta").text.startswith("Page 3")
    assert len(browser.find_element(By.ID, "detail-excerpt").text) > 40
    browser.save_screenshot(str(tmp_path / "student_page_ask.png"))
    assert (tmp_path / "student_page_ask.png").stat().st_size > 10_000


def test_student_answers_a_multiple_choice_question(browser, primary_tutor, tmp_path: Path):
    from selenium.webdriver.common.by import By

    with primary_tutor.client() as http:
        if "/v1/mcq" not in http.get("/openapi.json").json()["paths"]:
            pytest.skip("This build has no /v1/mcq endpoint.")
    open_page(browser, primary_tutor)
    browser.find_element(By.ID, "mode-mcq").click()
    browser.find_element(By.ID, "mcq-question").send_keys("Which unit measures force?")
    for field, text in zip(browser.find_elements(By.CSS_SELECTOR, "#mcq-options input"),
                           ["the joule", "the newton", "the watt", "the kelvin"], strict=True):
        field.send_keys(text)
    browser.find_element(By.ID, "mcq-button").click()
    chosen = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#mcq-result .chosen"), "the MCQ answer")
    assert chosen[0].text.startswith("Answer: ")
    assert chosen[0].text.removeprefix("Answer: ")[0] in "ABCD"
    rows = browser.find_elements(By.CSS_SELECTOR, "#mcq-result .score")
    assert [row.text.split()[0] for row in rows] == ["A", "B", "C", "D"]
    percents = [float(row.text.split()[-2]) for row in rows]
    assert abs(sum(percents) - 100) < 1, percents
    [best] = browser.find_elements(By.CSS_SELECTOR, "#mcq-result .score.best")
    assert best.text.split()[0] == chosen[0].text.removeprefix("Answer: ")[0]
    assert float(best.text.split()[-2]) == max(percents)
    assert browser.find_element(By.ID, "status").text == ""
    browser.save_screenshot(str(tmp_path / "student_page_mcq.png"))
