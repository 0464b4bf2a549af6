"""`GET /openapi.json` describes what the server does, and `GET /docs` renders it without the internet."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import msgpack
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from starlette.routing import Mount, Route

import rerankd
from rerankd.api.app import ServerConfig, create_app
from rerankd.api.auth import OPEN_PATHS

TIMEOUT = 60
CHROMIUM = Path("/usr/bin/chromium")
GOOD_SIE = {"query": {"text": "how long do fleas live"}, "items": [{"text": "a flea lives a year"}]}
GOOD_RERANK = {"model": "minilm", "query": "how long do fleas live", "documents": ["a flea lives a year"]}
GOOD_TEI = {"model": "minilm", "query": "how long do fleas live", "texts": ["a flea lives a year"]}


@pytest.fixture(scope="module")
def document(server) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/openapi.json", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def _validator(document: dict[str, Any], schema: dict[str, Any]) -> OAS31Validator:
    """A JSON Schema validator for `schema`, its `$ref`s resolved in the document's components."""
    return OAS31Validator({**schema, "components": document["components"]})


def _request_schema(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def _response_schema(document: dict[str, Any], method: str, path: str, status: int) -> dict[str, Any]:
    return document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]


def test_document_is_valid_openapi_3_1(document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "rerankd"
    assert document["info"]["version"] == rerankd.__version__
    assert "2000 items" in document["info"]["description"]  # built for this server's --max-items


def _served_operations() -> set[tuple[str, str]]:
    """(method, OpenAPI path) of every route of a freshly built app; the static files of /docs and / aside."""
    served = set()
    for route in create_app(ServerConfig()).routes:
        if isinstance(route, Mount):
            assert route.path in ("/docs/static", "/ui/static"), f"undocumented mount {route.path}"
            continue
        assert isinstance(route, Route)
        path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
        served |= {(method.lower(), path) for method in route.methods or () if method != "HEAD"}
    return served


def test_document_lists_every_route_the_app_serves(document):
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert documented == _served_operations()


def test_every_operation_documents_its_errors_with_the_envelope(document):
    envelope = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                readiness = status == "503" and path in {"/readyz", "/health"}  # answers its own body
                if int(status) >= 400 and not readiness:
                    assert response["content"]["application/json"]["schema"] == envelope, (method, path, status)
            if "requestBody" in operation:  # every body route reads the size limit and the content type
                assert {"400", "413", "415"} <= set(operation["responses"]), (method, path)
            if path.startswith(("/v1/score", "/v1/rerank", "/v2/rerank", "/rerank")):
                assert {"400", "401", "404", "413", "415", "502", "503"} <= set(operation["responses"]), path
    score = document["paths"]["/v1/score/{model}"]["post"]
    assert set(score["requestBody"]["content"]) == {"application/json", "application/msgpack"}
    assert score["parameters"][0]["name"] == "model"
    adapter = document["paths"]["/v1/models/{name}/adapters/{adapter}"]
    assert {"get", "put", "delete"} <= set(adapter)
    assert [p["name"] for p in adapter["put"]["parameters"]] == ["name", "adapter"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/score/minilm", GOOD_SIE),
        ("/v1/score/minilm", {**GOOD_SIE, "options": {"top_k": 1, "raw_scores": True, "profile": "default"}}),
        ("/v1/score/minilm", {"items": GOOD_SIE["items"]}),
        ("/v1/score/minilm", {"query": GOOD_SIE["query"]}),
        ("/v1/score/minilm", {**GOOD_SIE, "items": []}),
        ("/v1/score/minilm", {**GOOD_SIE, "items": [{"id": "1"}]}),
        ("/v1/score/minilm", {**GOOD_SIE, "query": "q"}),
        ("/v1/score/minilm", {**GOOD_SIE, "options": {"top_k": 0}}),
        ("/v1/score/minilm", {**GOOD_SIE, "options": {"top_k": True}}),
        ("/v1/score/minilm", {**GOOD_SIE, "options": {"raw_scores": 1}}),
        ("/v1/score/minilm", {**GOOD_SIE, "options": {"topk": 3}}),
        ("/v1/score/minilm", {**GOOD_SIE, "extra": 1}),
        ("/v1/rerank", GOOD_RERANK),
        (
            "/v1/rerank",
            {**GOOD_RERANK, "documents": [{"text": "a", "title": "kept, ignored"}], "rank_fields": ["text"]},
        ),
        ("/v1/rerank", {**GOOD_RERANK, "documents": []}),
        ("/v1/rerank", {**GOOD_RERANK, "documents": [1]}),
        ("/v1/rerank", {**GOOD_RERANK, "top_n": 0}),
        ("/v1/rerank", {**GOOD_RERANK, "return_documents": 1}),
        ("/v1/rerank", {**GOOD_RERANK, "rank_fields": ["title"]}),
        ("/v2/rerank", {**GOOD_RERANK, "extra": 1}),
        ("/rerank", GOOD_TEI),
        ("/rerank", {**GOOD_TEI, "truncation_direction": "RIGHT", "truncate": True}),
        ("/rerank", {**GOOD_TEI, "truncation_direction": "left"}),
        ("/rerank", {**GOOD_TEI, "texts": []}),
        ("/rerank", {**GOOD_TEI, "raw_scores": "yes"}),
        ("/rerank", {**GOOD_TEI, "extra": 1}),
    ],
)
def test_request_schemas_reject_what_the_server_rejects(server, document, path, body):
    template = "/v1/score/{model}" if path.startswith("/v1/score/") else path
    valid = _validator(document, _request_schema(document, "post", template)).is_valid(body)
    response = httpx.post(server.url + path, json=body, timeout=TIMEOUT)
    assert response.status_code in (200, 400), response.text
    assert valid == (response.status_code == 200), response.text


@pytest.mark.parametrize(
    "body",
    [{}, {"source": 3}, {"source": "  "}, {"source": "/tmp", "revision": 1}, {"source": "/tmp", "dtype": "fp16"}, []],
)
def test_admin_schema_rejects_what_the_server_rejects(server, document, body):
    assert not _validator(document, _request_schema(document, "put", "/v1/models/{name}")).is_valid(body)
    assert httpx.put(f"{server.url}/v1/models/x", json=body, timeout=TIMEOUT).status_code == 400
    assert _validator(document, _request_schema(document, "put", "/v1/models/{name}")).is_valid({"source": "/m"})


def test_real_answers_match_their_documented_schemas(server, document):
    def check(method: str, path: str, template: str, status: int = 200, **kwargs: Any) -> None:
        response = httpx.request(method, server.url + path, timeout=TIMEOUT, **kwargs)
        assert response.status_code == status, response.text
        body = msgpack.unpackb(response.content) if kwargs.get("headers") else response.json()
        errors = list(
            _validator(document, _response_schema(document, method.lower(), template, status)).iter_errors(body)
        )
        assert not errors, (path, status, [error.message for error in errors])

    sie_body = {**GOOD_SIE, "query": {"id": "q1", "text": "fleas"}}
    check("POST", "/v1/score/minilm", "/v1/score/{model}", json=sie_body)
    packed = {"content": msgpack.packb(GOOD_SIE), "headers": {"Content-Type": "application/msgpack"}}
    check("POST", "/v1/score/minilm", "/v1/score/{model}", **packed)
    check("POST", "/v1/rerank", "/v1/rerank", json={**GOOD_RERANK, "return_documents": True})
    check("POST", "/v2/rerank", "/v2/rerank", json=GOOD_RERANK)
    check("POST", "/rerank", "/rerank", json={**GOOD_TEI, "return_text": True})
    check("GET", "/v1/models", "/v1/models")
    check("GET", "/v1/models/minilm", "/v1/models/{name}")
    check("GET", "/v1/models/BAAI/bge-reranker-base", "/v1/models/{name}")  # a catalog id, not served
    check("GET", "/healthz", "/healthz")
    check("GET", "/readyz", "/readyz")
    check("POST", "/v1/score/minilm", "/v1/score/{model}", 400, json={**GOOD_SIE, "items": []})
    check("POST", "/v1/score/nope", "/v1/score/{model}", 404, json=GOOD_SIE)
    check("POST", "/v1/score/missing", "/v1/score/{model}", 502, json=GOOD_SIE)
    check("POST", "/rerank", "/rerank", 413, json={**GOOD_TEI, "texts": ["word " * 700]})
    check("GET", "/v1/models/nope", "/v1/models/{name}", 404)


def test_docs_page_and_its_assets_are_served_from_here(server):
    page = httpx.get(f"{server.url}/docs", timeout=TIMEOUT)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert "http://" not in html and "https://" not in html
    assert "validatorUrl: null" in html
    assert 'url: "/openapi.json"' in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) == 3 and all(asset.startswith("/docs/static/") for asset in assets), assets
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png"}
    for asset in assets:
        response = httpx.get(server.url + asset, timeout=TIMEOUT)
        assert response.status_code == 200, asset
        assert kinds[Path(asset).suffix] in response.headers["content-type"], asset
        if asset.endswith(".css"):  # everything the stylesheet loads is inline (data:) or from here
            urls = re.findall(r"url\(\s*['\"]?([^'\")]+)", response.text)
            assert all(not re.match(r"(https?:)?//", url) for url in urls), urls
    assert "SwaggerUIBundle" in httpx.get(f"{server.url}/docs/static/swagger-ui-bundle.js", timeout=TIMEOUT).text
    missing = httpx.get(f"{server.url}/docs/static/nope.js", timeout=TIMEOUT)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed")
def test_docs_render_offline_in_headless_chromium(server, tmp_path):
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # Any host but this server is unresolvable: the page must render from what it serves.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"{server.url}/docs",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    dom = done.stdout
    assert "/v1/score/" in dom, done.stderr[-2000:]
    for shown in ("/v1/rerank", "/rerank", "/v1/models/{name}/adapters/{adapter}", "/healthz"):
        assert shown in dom
    assert "rerankd" in dom


def test_docs_and_document_need_no_api_key(start_server, minilm_cross_encoder_dir):
    locked = start_server("--model", f"m={minilm_cross_encoder_dir}", "--lazy", "--api-key", "s3cret")
    document = httpx.get(f"{locked.url}/openapi.json", timeout=TIMEOUT).json()
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None or "{" in path:
            continue
        status = httpx.get(locked.url + path, timeout=TIMEOUT).status_code
        assert status == (200 if operation["security"] == [] else 401), path
        open_path = path in OPEN_PATHS
        assert open_path == (operation["security"] == []), path
    assert httpx.get(f"{locked.url}/docs/static/swagger-ui.css", timeout=TIMEOUT).status_code == 200
    authorised = httpx.get(f"{locked.url}/v1/models", headers={"Authorization": "Bearer s3cret"}, timeout=TIMEOUT)
    assert authorised.status_code == 200


def test_counts_are_bounded_in_the_document(document):
    """`top_k: 1e30` or 10**20 is a 400 naming the field, and the document says where the bounds are."""
    schemas = document["components"]["schemas"]
    bounded = {
        "ScoreOptions": ("top_k", "max_tokens_per_doc", "max_chunks_per_doc"),
        "RerankRequest": ("top_n", "max_tokens_per_doc", "max_chunks_per_doc"),
    }
    for name, fields in bounded.items():
        for field in fields:
            (schema,) = (s for s in schemas[name]["properties"][field]["anyOf"] if s.get("type") == "integer")
            assert (schema["minimum"], schema["maximum"]) == (1, 1_000_000), (name, field)
    score = document["paths"]["/v1/score/{model}"]["post"]["responses"]["400"]["description"]
    assert "DUPLICATE_ITEM_ID" in score
