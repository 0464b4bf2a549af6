"""The page at `/`: open and offline, its samples, and a real browser (headless Chromium) using it.

The browser tests drive Debian's `chromium` through its `chromium-driver` with Selenium, against
a live `rerankd serve` with an API key and an admin key: the page must send them, rank like the
API, render a hostile document as text, and load, swap and unload models through the admin API.
They skip where Chromium, its driver or Selenium is missing. Nothing leaves the machine: every
host but 127.0.0.1 is unresolvable for the browser, Selenium Manager is never asked for a driver
(both paths are given) and its usage statistics are off.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support.data import SHARED_DATA
from support.ranking import assert_same_ranking

from rerankd.bench.server import RunningServer

TIMEOUT = 60
KEY = "page-api-key"
ADMIN_KEY = "page-admin-key"
BI_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TREC_DIR = SHARED_DATA / "trec-dl-2019"
# A document that would run script, load an image and bold text if the page rendered it as HTML.
HOSTILE = '<img src="x" onerror="window.pwned = 1"><script>window.pwned = 2</script> flea <b>bites</b> &amp; itching'
QUERY = "how long do fleas live"
DOCUMENTS = [
    "An adult flea lives two to three months on its host.",
    "Bananas are yellow and grow in tropical climates.",
    HOSTILE,
    "Flea eggs hatch in two days to two weeks, depending on warmth and humidity.",
    "The Eiffel Tower is in Paris.",
    "Without a host to feed on, an adult flea survives about a week.",
]


def _auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def live(start_server, minilm_cross_encoder_dir: Path, minilm_bi_encoder_dir: Path) -> RunningServer:
    """Two models (one column each), both keys, and the shared data folder for the TREC samples.

    The torch backend: what this file tests is the page, not how a model runs (converting both
    models to OpenVINO would cost ~10 s of start-up).
    """
    return start_server(
        "--backend",
        "torch",
        "--api-key",
        KEY,
        "--admin-api-key",
        ADMIN_KEY,
        "--model",
        f"minilm={minilm_cross_encoder_dir}",
        "--model",
        BI_ENCODER,
        env={"RERANKD_SHARED_DATA": str(SHARED_DATA)},
    )


def _api_scores(server: RunningServer, model: str, documents: list[str]) -> list[dict]:
    body = {"query": {"text": QUERY}, "items": [{"id": str(i), "text": text} for i, text in enumerate(documents)]}
    response = httpx.post(f"{server.url}/v1/score/{model}", json=body, headers=_auth(), timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    return response.json()["scores"]


# ---------------------------------------------------------------------------- over plain HTTP


def _csp(header: str) -> dict[str, list[str]]:
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def test_page_is_open_offline_and_allows_only_this_server(live):
    page = httpx.get(f"{live.url}/", timeout=TIMEOUT)  # no key: open like /docs
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = _csp(page.headers["content-security-policy"])
    assert csp["default-src"] == ["'none'"]
    for directive in ("script-src", "style-src", "connect-src"):
        assert csp[directive] == ["'self'"], directive  # no 'unsafe-inline', no other host
    assert csp["require-trusted-types-for"] == ["'script'"]
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert "http://" not in html and "https://" not in html
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attributes and not body.strip() for attributes, body in scripts), scripts
    assert not re.search(r"\sstyle=|\son\w+=", html), "inline styles or handlers would need 'unsafe-inline'"
    assets = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', html)
    kinds = {".js": "javascript", ".css": "text/css"}
    assert sorted(Path(asset.split("?")[0]).suffix for asset in assets) == [".css", ".js"]
    for asset in assets:
        response = httpx.get(live.url + asset, timeout=TIMEOUT)  # no key either
        assert response.status_code == 200, asset
        assert kinds[Path(asset.split("?")[0]).suffix] in response.headers["content-type"], asset
        assert not re.search(r"https?://|url\(", response.text), asset  # fetches nothing from elsewhere
    # Its data calls are not open.
    assert httpx.get(f"{live.url}/ui/samples", timeout=TIMEOUT).status_code == 401
    assert httpx.get(f"{live.url}/v1/models", timeout=TIMEOUT).status_code == 401
    assert httpx.get(f"{live.url}/ui/static/nope.js", timeout=TIMEOUT).status_code == 404


def test_samples_are_the_projects_own_and_trec_read_at_run_time(live):
    listing = httpx.get(f"{live.url}/ui/samples", headers=_auth(), timeout=TIMEOUT)
    assert listing.status_code == 200, listing.text
    body = listing.json()
    own = [s for s in body["samples"] if s["source"] == "rerankd"]
    assert len(own) >= 4
    for summary in own:
        sample = httpx.get(f"{live.url}/ui/samples/{summary['id']}", headers=_auth(), timeout=TIMEOUT).json()
        assert sample["query"] == summary["query"]
        assert len(sample["documents"]) == len(sample["grades"]) == summary["documents"] >= 6
        assert all(grade in (0, 1, 2, 3) for grade in sample["grades"])
    missing = httpx.get(f"{live.url}/ui/samples/nope", headers=_auth(), timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
    assert missing.json()["error"]["param"] == "sample"

    trec_file = TREC_DIR / "retrieve_results_dl19.json"
    assert body["trec_dl_2019"] == trec_file.exists()
    if not trec_file.exists():
        return  # a fresh clone: the project's sets only
    rows = json.loads(trec_file.read_text())
    trec = [s for s in body["samples"] if s["source"] == "trec-dl-2019"]
    assert len(trec) == len(rows) == 43
    row = rows[0]
    qid = str(row["hits"][0]["qid"])
    sample = httpx.get(f"{live.url}/ui/samples/trec-dl-2019-{qid}", headers=_auth(), timeout=TIMEOUT).json()
    assert sample["query"] == row["query"]
    assert sample["documents"] == [" ".join(hit["content"].split()) for hit in row["hits"][:20]]
    qrels = {}
    for line in (TREC_DIR / "qrels.dl19-passage.txt").read_text().splitlines():
        q, _, docid, grade = line.split()
        qrels[(q, docid)] = int(grade)
    assert sample["grades"] == [qrels.get((qid, str(hit["docid"]))) for hit in row["hits"][:20]]


# ---------------------------------------------------------------------------- in a real browser


def _missing_browser() -> str | None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        return f"{CHROMIUM} or {CHROMEDRIVER} is not installed (Debian: apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator:
    reason = _missing_browser()
    if reason:
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1500,1100",
        # Any host but this server is unresolvable: the page must work from what it serves.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_AVOID_STATS", "true")  # Selenium Manager's usage statistics, should anything start it
        driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
        driver.set_page_load_timeout(TIMEOUT)
        yield driver
        driver.quit()


def _wait(driver, condition, timeout: float = TIMEOUT):
    """Until `condition(driver)` is truthy; an element that the page's 2-second refresh redrew is looked up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, ignored_exceptions=ignored).until(condition)


def _act(driver, action) -> None:
    """Run `action()` (find elements, click), again if the page redrew them in between."""
    _wait(driver, lambda d: action() or True)


def _open(driver, server: RunningServer, *, admin: bool = False) -> None:
    """Load the page, type the keys, and wait until it has listed the models with them."""
    from selenium.webdriver.common.by import By

    driver.get(f"{server.url}/")
    driver.find_element(By.ID, "api-key").send_keys(KEY)
    if admin:
        driver.find_element(By.ID, "admin-key").send_keys(ADMIN_KEY)
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#model-picker input")) >= 2)


def _choose(driver, models: list[str]) -> None:
    """Tick exactly `models` in the picker."""
    from selenium.webdriver.common.by import By

    def tick() -> None:
        for box in driver.find_elements(By.CSS_SELECTOR, "#model-picker input"):
            if box.is_selected() != (box.get_attribute("value") in models):
                box.click()

    _act(driver, tick)
    picked = driver.find_elements(By.CSS_SELECTOR, "#model-picker input:checked")
    assert [box.get_attribute("value") for box in picked] == models


def _rank(driver, query: str | None, documents: list[str] | None, columns: int) -> list:
    """Type (or keep) the query and candidates, press Rerank, and return the finished columns."""
    from selenium.webdriver.common.by import By

    if query is not None:
        field = driver.find_element(By.ID, "query")
        field.clear()
        field.send_keys(query)
    if documents is not None:
        # Set as a paste would (send_keys types character by character).
        driver.execute_script("document.getElementById('candidates').value = arguments[0]", "\n".join(documents))
    driver.find_element(By.ID, "rank").click()
    done = ".column.done, .column.failed"
    _wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, done)) == columns)
    return driver.find_elements(By.CSS_SELECTOR, ".column")


def _rendered(driver, column) -> list[dict]:
    """Each ranked row of a column, best first: its index, its score (full and as shown), text and grade badge."""
    return driver.execute_script(
        """return [...arguments[0].querySelectorAll("li.hit")].map((hit) => ({
            index: Number(hit.dataset.index),
            score: Number(hit.dataset.score),
            shown: hit.querySelector(".score").textContent,
            text: hit.querySelector(".text").textContent,
            grade: [...hit.querySelectorAll(".grade")].map((badge) => badge.textContent),
        }));""",
        column,
    )


def _assert_ranked_like_the_api(rows: list[dict], api: list[dict]) -> None:
    """The rendered order is the API's (near-ties within float noise may swap), with its scores as shown."""
    api_score = {s["index"]: s["score"] for s in api}
    assert_same_ranking([row["index"] for row in rows], [api_score[i] for i in range(len(DOCUMENTS))], tol=1e-6)
    for rank, row in enumerate(rows):
        assert row["score"] == pytest.approx(api_score[row["index"]], abs=1e-6), (rank, row)
        # Shown with 4 decimals: the API's score, rounded.
        assert abs(float(row["shown"]) - api_score[row["index"]]) <= 0.5e-4 + 1e-6, (rank, row)
        assert row["text"] == DOCUMENTS[row["index"]]


def _policy_violations(driver) -> list[str]:
    """Console messages saying the Content-Security-Policy or Trusted Types blocked something."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if re.search(r"Content Security Policy|Trusted Type|Refused to", entry["message"])
    ]


def test_browser_ranks_like_the_api_and_shows_documents_as_text(live, browser, tmp_path):
    from selenium.webdriver.common.by import By

    _open(browser, live)
    models = ["minilm", BI_ENCODER]
    _choose(browser, models)
    columns = _rank(browser, QUERY, DOCUMENTS, len(models))
    assert [c.get_attribute("data-model") for c in columns] == models
    for column in columns:
        model = column.get_attribute("data-model")
        _assert_ranked_like_the_api(_rendered(browser, column), _api_scores(live, model, DOCUMENTS))
        latency = column.find_element(By.CSS_SELECTOR, ".latency").text
        assert re.fullmatch(r"\d+ ms", latency), latency
        assert f"{len(DOCUMENTS)} pairs" in column.find_element(By.CSS_SELECTOR, ".meta").text

    # The hostile document is text: no element of it exists, none of its script ran.
    results = browser.find_element(By.ID, "results")
    assert results.find_elements(By.CSS_SELECTOR, "img, script, b") == []
    assert browser.execute_script("return window.pwned") is None
    hostile_rows = results.find_elements(By.CSS_SELECTOR, f'li.hit[data-index="{DOCUMENTS.index(HOSTILE)}"] .text')
    assert [row.get_attribute("textContent") for row in hostile_rows] == [HOSTILE, HOSTILE]

    # The status panel: both models loaded, from /v1/models; queue and throughput from /metrics.
    _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#card-loaded .card-value").text == "2")
    assert "pairs/s" in browser.find_element(By.CSS_SELECTOR, "#card-throughput").text
    queue = browser.find_element(By.CSS_SELECTOR, "#card-queue .card-value").text
    assert queue.isdigit(), queue
    table = browser.find_element(By.ID, "models-table").text
    assert "minilm" in table and BI_ENCODER in table and "loaded" in table
    # Without the admin key, no admin buttons.
    assert not any(b.is_displayed() for b in browser.find_elements(By.CSS_SELECTOR, "#models-table button"))
    assert _policy_violations(browser) == []

    screenshot = tmp_path / "page.png"
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_browser_loads_a_sample_with_its_grades(live, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _open(browser, live)
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#sample option[value="fleas"]'))
    Select(browser.find_element(By.ID, "sample")).select_by_value("fleas")
    sample = httpx.get(f"{live.url}/ui/samples/fleas", headers=_auth(), timeout=TIMEOUT).json()
    _wait(browser, lambda d: d.find_element(By.ID, "query").get_attribute("value") == sample["query"])
    assert browser.find_element(By.ID, "candidates").get_attribute("value") == "\n".join(sample["documents"])
    _choose(browser, [BI_ENCODER])
    (column,) = _rank(browser, None, None, 1)
    rows = _rendered(browser, column)
    assert sorted(row["index"] for row in rows) == list(range(len(sample["documents"])))
    for row in rows:
        assert row["grade"] == [f"rel {sample['grades'][row['index']]}"]
    assert "nDCG@10" in column.find_element(By.CSS_SELECTOR, ".meta").text


def _tiny_lora(directory: Path) -> Path:
    """A LoRA adapter in PEFT's format (rank 2 on layer 0's query, seeded), written directly.

    What this file tests is the page, not LoRA (tests/test_adapters.py checks adapters against
    PEFT); building one with PEFT would add ~10 s of imports and model loading.
    """
    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(7)
    directory.mkdir()
    config = {"peft_type": "LORA", "task_type": "SEQ_CLS", "r": 2, "lora_alpha": 4, "target_modules": ["query"]}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    module = "base_model.model.bert.encoder.layer.0.attention.self.query"
    tensors = {
        f"{module}.lora_A.weight": rng.normal(0, 0.5, (2, 384)).astype(np.float32),
        f"{module}.lora_B.weight": rng.normal(0, 0.5, (384, 2)).astype(np.float32),
    }
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    return directory


def test_browser_swaps_unloads_and_loads_models_with_the_admin_key(live, browser, tmp_path):
    from selenium.webdriver.common.by import By

    _open(browser, live, admin=True)

    def row(name: str):
        rows = browser.find_elements(By.CSS_SELECTOR, f'#models-table tr[data-model="{name}"]')
        return rows[0] if rows else None

    def labels(name: str) -> list[str]:
        return [b.text for b in row(name).find_elements(By.TAG_NAME, "button")]

    def click(name: str, label: str) -> None:
        def press() -> None:
            (button,) = [b for b in row(name).find_elements(By.TAG_NAME, "button") if b.text == label]
            button.click()

        _act(browser, press)

    def outcome(doing: str) -> str:
        """The admin message once `doing` has finished: `doing: done in N s` or `doing: <error>`."""
        message = browser.find_element(By.ID, "admin-message")
        _wait(browser, lambda d: message.text.startswith(f"{doing}: "))
        return message.text

    def served() -> dict[str, dict]:
        listing = httpx.get(f"{live.url}/v1/models", headers=_auth(), timeout=TIMEOUT).json()
        return {model["id"]: model for model in listing["data"] if model["registered"]}

    _wait(browser, lambda d: row("minilm") is not None and row(BI_ENCODER) is not None)
    # Reload = PUT of the same source: a hot-swap.
    swaps = served()["minilm"]["swaps"]
    click("minilm", "Reload")
    assert outcome("reload minilm").startswith("reload minilm: done"), "the reload failed"
    assert served()["minilm"]["swaps"] == swaps + 1

    # Unload asks once more, then DELETEs.
    click(BI_ENCODER, "Unload")
    _wait(browser, lambda d: "Confirm unload" in labels(BI_ENCODER))
    assert BI_ENCODER in served()  # the first click only asks
    click(BI_ENCODER, "Confirm unload")
    assert outcome(f"unload {BI_ENCODER}").startswith(f"unload {BI_ENCODER}: done")
    assert BI_ENCODER not in served()
    _wait(browser, lambda d: row(BI_ENCODER) is None)

    # An adapter through its form: it joins the picker as `minilm:tiny` and ranks like the API.
    browser.find_element(By.ID, "adapter-model").send_keys("minilm")
    browser.find_element(By.ID, "adapter-name").send_keys("tiny")
    browser.find_element(By.ID, "adapter-source").send_keys(str(_tiny_lora(tmp_path / "tiny")))
    browser.find_element(By.CSS_SELECTOR, "#adapter-form button").click()
    assert outcome("load minilm:tiny").startswith("load minilm:tiny: done")
    _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, '#model-picker input[value="minilm:tiny"]'))
    _choose(browser, ["minilm:tiny"])
    (column,) = _rank(browser, QUERY, DOCUMENTS, 1)
    assert column.get_attribute("data-model") == "minilm:tiny"
    adapted = _api_scores(live, "minilm:tiny", DOCUMENTS)
    _assert_ranked_like_the_api(_rendered(browser, column), adapted)
    assert adapted != _api_scores(live, "minilm", DOCUMENTS)  # the column is the adapter's, not the base's
    _wait(browser, lambda d: row("minilm:tiny") is not None)
    click("minilm:tiny", "Unload")
    _wait(browser, lambda d: "Confirm unload" in labels("minilm:tiny"))
    click("minilm:tiny", "Confirm unload")
    assert outcome("unload minilm:tiny").startswith("unload minilm:tiny: done")
    assert [a["name"] for a in served()["minilm"]["adapters"]] == []

    # Load it back through the form.
    browser.find_element(By.ID, "load-name").send_keys(BI_ENCODER)
    browser.find_element(By.ID, "load-source").send_keys(BI_ENCODER)
    browser.find_element(By.CSS_SELECTOR, "#load-form button").click()
    assert outcome(f"load {BI_ENCODER}").startswith(f"load {BI_ENCODER}: done")
    assert served()[BI_ENCODER]["state"] == "loaded"
    _wait(browser, lambda d: row(BI_ENCODER) is not None)
    assert _policy_violations(browser) == []
