"""The student page in headless Chromium (Debian's chromium and chromium-driver, driven by selenium)
against the live tutor: ask, watch the answer stream in, open a citation and its PDF at the cited page;
MCQ mode; and, on fake models behind a student key, the cited PDF fetched with the key. Saves screenshots.

Headless Chromium renders the PDF in its built-in viewer inside the frame (at the cited page, as the
screenshots show), but the viewer is an extension frame whose text and page number the page cannot
read. So the tests read the cited page from the frame's URL (``blob:...#page=N``), check that the blob
holds the course's PDF byte for byte, and wait until the viewer's pixels show a white page."""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.serving import free_port
from tests.conftest import SAMPLE_COURSE
from tests.utils.server import SAMPLE_COURSE_NAME, LiveServer

pytestmark = pytest.mark.integration

STUDENT_KEY = "page-student-key"
FAKE_ANSWER = ("Rubber grips dry concrete with a coefficient of friction of about 0.8 [1]. "
               "Heat flows from hot to cold [2].")
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


@pytest.fixture(scope="module")
def keyed_fake_tutor(tmp_path_factory) -> Iterator[str]:
    """The real app behind a student key, served by uvicorn in a thread, on fake models (so it starts in
    seconds) and a real embedded store holding the sample course; yields its URL."""
    import uvicorn

    from app.settings import Settings
    from ingest.run import ingest_paths
    from retrieval import CourseStore
    from tests.utils.deploy import StreamingFakeRuntime
    from tests.utils.embedding import HashingEmbedder
    from tests.utils.fakes import FakeRetriever, fake_app, make_hit

    store = CourseStore(path=tmp_path_factory.mktemp("keyed-chroma"))
    assert not ingest_paths([SAMPLE_COURSE], SAMPLE_COURSE_NAME, store, HashingEmbedder()).failed
    # The fake answer's words are the notes' (the server drops a sentence of words no note holds).
    hits = [make_hit("Rubber on dry concrete grips with a coefficient of friction of about 0.8. "
                     "Ice is slippery.", source="mechanics.pdf", page=3),
            make_hit("Heat flows from hot to cold bodies.", source="thermodynamics.pdf", page=2)]
    settings = Settings(data_dir=tmp_path_factory.mktemp("keyed-data"), student_api_key=STUDENT_KEY,
                        min_score=0.0, short_answers=False)  # exact answers of the fake model
    app = fake_app(settings, StreamingFakeRuntime(answer=FAKE_ANSWER), store, FakeRetriever(store, hits))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, "the keyed fake tutor to start", timeout_s=30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


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


def open_citation_file(browser, n: int, selector: str = "#citations button") -> tuple[int, Path]:
    """Click citation [n] (a button matching ``selector``), wait for the viewer; returns the page in the
    frame's URL and the sample course's PDF that the blob holds (compared byte for byte)."""
    from selenium.webdriver.common.by import By

    buttons = browser.find_elements(By.CSS_SELECTOR, selector)
    next(b for b in buttons if b.get_attribute("data-n") == str(n)).click()
    frame = wait_for(lambda: browser.find_elements(By.ID, "viewer-frame"), f"the PDF of citation [{n}]")[0]
    match = re.fullmatch(r"(blob:.+)#page=(\d+)", frame.get_attribute("src"))
    assert match, frame.get_attribute("src")
    digest = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0]).then((r) => r.arrayBuffer()).then((b) => crypto.subtle.digest('SHA-256', b))"
        ".then((d) => done([...new Uint8Array(d)].map((x) => x.toString(16).padStart(2, '0')).join('')));",
        match.group(1))
    source = browser.find_element(By.ID, "detail-title").text.split("] ", 1)[1]
    pdf = SAMPLE_COURSE / source
    assert digest == hashlib.sha256(pdf.read_bytes()).hexdigest()
    return int(match.group(2)), pdf


def white_share(png: bytes) -> float:
    """The share of near-white pixels in a screenshot: a rendered page, on the viewer's dark background."""
    import io

    from PIL import Image

    counts = Image.open(io.BytesIO(png)).convert("L").histogram()  # pixels per grey level, 0 to 255
    return sum(counts[241:]) / sum(counts)


def screenshot_of_the_rendered_pdf(browser, path: Path) -> None:
    """Wait until the viewer shows a page (a tenth of it white at least), then save the page's screenshot."""
    from selenium.webdriver.common.by import By

    viewer = browser.find_element(By.ID, "viewer")
    browser.execute_script("arguments[0].scrollIntoView()", viewer)
    wait_for(lambda: white_share(viewer.screenshot_as_png) > 0.1, "the PDF viewer to show a page", 60, 0.5)
    browser.save_screenshot(str(path))
    assert path.stat().st_size > 10_000


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
    # The reader's short answer comes first, apart, citing the best-ranked note.
    short = answer.find_element(By.CSS_SELECTOR, ":scope > :first-child")
    assert short.get_attribute("class") == "short-answer" and short.text.endswith("[1].")
    assert [b.get_attribute("data-n") for b in short.find_elements(By.CSS_SELECTOR, "button.cite")] == ["1"]
    citations = browser.find_elements(By.CSS_SELECTOR, "#citations button")
    assert citations and "mechanics.pdf" in citations[0].text
    target = next(c for c in citations if "p. 3" in c.text)
    target.click()
    detail = browser.find_element(By.ID, "citation-detail")
    assert detail.is_displayed()
    assert "mechanics.pdf" in browser.find_element(By.ID, "detail-title").text
    assert browser.find_element(By.ID, "detail-meta").text.startswith("Page 3")
    assert len(browser.find_element(By.ID, "detail-excerpt").text) > 40
    page, pdf = open_citation_file(browser, int(target.get_attribute("data-n")))
    assert (page, pdf.name) == (3, "mechanics.pdf")
    excerpt = browser.find_element(By.ID, "detail-excerpt")
    marked = excerpt.find_element(By.TAG_NAME, "mark").text  # the sentence closest to the answer
    assert len(marked) > 20 and marked in excerpt.text
    first = citations[0].text  # "[1] mechanics.pdf, p. N"
    page, pdf = open_citation_file(browser, 1)
    assert first == f"[1] {pdf.name}, p. {page}"
    assert browser.find_element(By.ID, "detail-open").get_attribute("href").endswith(f"#page={page}")
    screenshot_of_the_rendered_pdf(browser, tmp_path / "student_page_ask.png")


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


def test_with_a_student_key_the_page_fetches_the_cited_pdf_with_the_key(browser, keyed_fake_tutor, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(f"{keyed_fake_tutor}/")
    browser.execute_script("localStorage.clear()")
    browser.get(f"{keyed_fake_tutor}/")
    status = browser.find_element(By.ID, "status")
    wait_for(lambda: "needs the student API key" in status.text, "the page to say it needs a key")
    browser.find_element(By.CSS_SELECTOR, ".key summary").click()
    browser.find_element(By.ID, "api-key").send_keys(STUDENT_KEY + Keys.TAB)
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#course option"), "the course list")
    browser.find_element(By.ID, "question").send_keys("How well does rubber grip concrete?")
    browser.find_element(By.ID, "ask-button").click()
    wait_for(lambda: status.text.startswith("Answered"), "the answer")

    page, pdf = open_citation_file(browser, 1, selector="#answer button.cite")
    assert (page, pdf.name) == (3, "mechanics.pdf")
    [cited] = browser.find_elements(By.CSS_SELECTOR, "#answer .sentence.cited")
    assert cited.text == "Rubber grips dry concrete with a coefficient of friction of about 0.8 [1]."
    assert browser.find_element(By.ID, "detail-cited").text == (
        "Cited for: Rubber grips dry concrete with a coefficient of friction of about 0.8.")
    marked = browser.find_element(By.CSS_SELECTOR, "#detail-excerpt mark").text
    assert marked == "Rubber on dry concrete grips with a coefficient of friction of about 0.8."
    screenshot_of_the_rendered_pdf(browser, tmp_path / "student_page_keyed.png")

    page, pdf = open_citation_file(browser, 2, selector="#answer button.cite")
    assert (page, pdf.name) == (2, "thermodynamics.pdf")
    assert browser.find_element(By.CSS_SELECTOR, "#answer .sentence.cited").text.startswith("Heat flows")


def test_a_follow_up_is_sent_with_the_conversation_until_the_student_starts_over(browser, keyed_fake_tutor):
    from selenium.webdriver.common.by import By

    browser.get(f"{keyed_fake_tutor}/")
    browser.execute_script("localStorage.setItem(arguments[0], arguments[1])", "tutor-api-key", STUDENT_KEY)
    browser.get(f"{keyed_fake_tutor}/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#course option"), "the course list")
    # Record what the page sends to the server.
    browser.execute_script("""
        window.sentBodies = [];
        const send = window.fetch;
        window.fetch = (url, options) => {
          if (String(url).endsWith("/v1/ask/stream")) window.sentBodies.push(JSON.parse(options.body));
          return send(url, options);
        };""")
    status, note = browser.find_element(By.ID, "status"), browser.find_element(By.ID, "conversation-note")

    def ask(question: str) -> None:
        browser.find_element(By.ID, "question").clear()
        browser.find_element(By.ID, "question").send_keys(question)
        browser.find_element(By.ID, "ask-button").click()
        wait_for(lambda: status.text.startswith("Answered"), "the answer")

    ask("How well does rubber grip concrete?")
    assert note.text == "Follow-up to 1 earlier question"
    ask("And on ice?")
    first, follow_up = browser.execute_script("return window.sentBodies")
    assert first["history"] == []
    assert [turn["role"] for turn in follow_up["history"]] == ["user", "assistant"]
    assert follow_up["history"][0]["content"] == "How well does rubber grip concrete?"
    assert follow_up["history"][1]["content"].startswith("Rubber grips dry concrete")
    browser.find_element(By.ID, "new-conversation").click()
    assert note.text == "" and not browser.find_element(By.ID, "new-conversation").is_enabled()
    ask("How well does rubber grip concrete?")
    assert browser.execute_script("return window.sentBodies")[-1]["history"] == []


def test_the_notes_the_server_quotes_are_set_apart_from_the_models_words(browser, keyed_fake_tutor):
    from selenium.webdriver.common.by import By

    browser.get(f"{keyed_fake_tutor}/")
    browser.execute_script("localStorage.setItem(arguments[0], arguments[1])", "tutor-api-key", STUDENT_KEY)
    browser.get(f"{keyed_fake_tutor}/")
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#course option"), "the course list")
    status = browser.find_element(By.ID, "status")
    # The fake answer says nothing of ice: the server quotes the first note's sentence about it.
    browser.find_element(By.ID, "question").send_keys("Why do people fall on ice?")
    browser.find_element(By.ID, "ask-button").click()
    wait_for(lambda: status.text.startswith("Answered"), "the answer")
    own = browser.find_elements(By.CSS_SELECTOR, "#answer > .sentence")
    assert [sentence.text for sentence in own] == [
        "Rubber grips dry concrete with a coefficient of friction of about 0.8 [1].",
        "Heat flows from hot to cold [2]."]
    quote = browser.find_element(By.CSS_SELECTOR, "#answer .from-notes")
    assert quote.text == 'The notes say: "Ice is slippery." [1]'
    page, pdf = open_citation_file(browser, 1, selector="#answer .from-notes button.cite")
    assert (page, pdf.name) == (3, "mechanics.pdf")
