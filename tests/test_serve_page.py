"""The page at GET / of `ulmfit serve`, in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium): type a text, press the button, read the label and find the shaded tokens in the DOM.
Skipped only when no Chromium is installed and this is not CI (CI=true: scripts/test.sh installs it)."""

import os
import shutil

import pytest

from classifier_helpers import one_thread  # noqa: F401 (autouse)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)


def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium = None
    else:
        selenium = webdriver
    if not (CHROMIUM and DRIVER and selenium):
        why = "no chromium / chromedriver (apt-get install chromium chromium-driver) or no selenium"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must run the browser test: {why}")
        pytest.skip(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=900,640"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)  # never selenium-manager


def test_the_page_classifies_and_shades_each_token(tmp_path):
    from classifier_helpers import train_tiny_classifier
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait
    from test_serve import running

    from ulmfit.serve.app import create_app
    from ulmfit.serve.model import load
    from ulmfit.settings import ServeSettings

    browser = _browser()
    try:
        clas = train_tiny_classifier(tmp_path, n_docs=60, n_test=20) / "clas"
        served = load(clas, ServeSettings(threads=1, explain_steps=8))
        with running(create_app(served, ServeSettings(explain_steps=8))) as (url, _):
            browser.get(url + "/")
            box = browser.find_element(By.ID, "text")
            box.send_keys("W0 w3 w4 w5 w6!")
            browser.find_element(By.ID, "go").click()
            WebDriverWait(browser, 60).until(EC.visibility_of_element_located((By.ID, "result")))
            label = browser.find_element(By.ID, "label").text
            expect = served.rows(served.predict_proba(["W0 w3 w4 w5 w6!"]))[0]
            assert label.split()[0] == expect["label"]
            spans = browser.find_elements(By.CSS_SELECTOR, "#tokens span.tok[data-score]")
            assert [s.text for s in spans] == ["W0", "w3", "w4", "w5", "w6", "!"]  # xxmaj folded, xxbos hidden
            scores = [float(s.get_attribute("data-score")) for s in spans]
            assert any(v != 0 for v in scores)
            top = spans[max(range(len(scores)), key=lambda k: abs(scores[k]))]
            shade = top.value_of_css_property("background-color")  # the strongest token: full colour
            assert ("22, 163, 74" in shade if scores[spans.index(top)] > 0 else "220, 38, 38" in shade), shade
            assert len(browser.find_elements(By.CSS_SELECTOR, "#probs tr")) == 2
            if os.environ.get("ULMFIT_SCREENSHOT"):  # docs/serving.png
                browser.save_screenshot(os.environ["ULMFIT_SCREENSHOT"])
    finally:
        browser.quit()
