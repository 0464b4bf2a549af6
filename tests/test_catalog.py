"""The catalog (id -> family and scoring settings), detection of uncatalogued checkpoints, `GET /v1/models`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.encoder_checkpoints import write_config_only

from rerankd.bench.server import RunningServer
from rerankd.models.catalog import ModelSpec, UnknownFamily, catalog, detect_spec, validate_entry
from rerankd.models.cross_encoder import resolve_query_cap

CROSS_ENCODERS = {
    # id: (architecture, truncation, max length, query cap)
    "BAAI/bge-reranker-v2-m3": ("XLMRobertaForSequenceClassification", "only_second", 512, 384),
    "BAAI/bge-reranker-base": ("XLMRobertaForSequenceClassification", "only_second", 512, 384),
    "BAAI/bge-reranker-large": ("XLMRobertaForSequenceClassification", "only_second", 512, 384),
    "cross-encoder/ms-marco-MiniLM-L-6-v2": ("BertForSequenceClassification", "longest_first", 512, None),
    "cross-encoder/ms-marco-MiniLM-L-12-v2": ("BertForSequenceClassification", "longest_first", 512, None),
    "mixedbread-ai/mxbai-rerank-base-v1": ("DebertaV2ForSequenceClassification", "longest_first", 512, None),
    "Alibaba-NLP/gte-reranker-modernbert-base": ("ModernBertForSequenceClassification", "longest_first", 8192, None),
}


@pytest.mark.parametrize("model_id", list(CROSS_ENCODERS))
def test_cross_encoder_entries(model_id):
    architecture, truncation, max_length, query_cap = CROSS_ENCODERS[model_id]
    spec = catalog()[model_id]
    assert (spec.family, spec.architecture, spec.truncation, spec.max_length, spec.query_max_length) == (
        "cross-encoder",
        architecture,
        truncation,
        max_length,
        query_cap,
    )
    assert spec.activation == "config"
    assert spec.license and spec.notes


def test_every_entry_is_complete():
    for model_id, spec in catalog().items():
        assert spec.catalog_id == spec.name == spec.source == model_id
        assert spec.family and spec.max_length and spec.license, model_id
        assert not spec.settings.keys() & {"truncation", "query_max_length", "max_length"}, model_id


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"truncation": "only_first"}, "truncation 'only_first'"),
        ({"query_max_length": 100}, "only applies to truncation: only_second"),
        ({"truncation": "only_second", "query_max_length": 512}, "between 1 and max_length"),
    ],
)
def test_catalog_typos_fail_loudly(changes, message):
    spec = ModelSpec(name="x", source="x", family="cross-encoder", max_length=512, **changes)
    with pytest.raises(ValueError, match=message):
        validate_entry(spec)


def test_query_cap_defaults_to_flag_rerankers_three_quarters():
    spec = ModelSpec(name="x", source="x", family="cross-encoder", truncation="only_second")
    assert resolve_query_cap(spec, 512, 4) == 384
    assert resolve_query_cap(ModelSpec(name="x", source="x", family="cross-encoder"), 512, 4) is None
    with pytest.raises(ValueError, match="no room for the document"):
        resolve_query_cap(ModelSpec(name="x", source="x", family="cross-encoder", truncation="only_second"), 6, 4)


# ------------------------------------------------------------------------------------- detection
def test_detects_sequence_classification_as_cross_encoder(tmp_path):
    directory = write_config_only(tmp_path, {"architectures": ["DebertaV2ForSequenceClassification"]})
    spec = detect_spec("mine", str(directory), directory)
    assert (spec.family, spec.catalog_id) == ("cross-encoder", None)
    assert spec.architecture == "DebertaV2ForSequenceClassification"
    assert spec.truncation == "longest_first"  # sentence-transformers' CrossEncoder rule


def test_detects_sentence_transformers_and_bare_encoders_as_bi_encoders(tmp_path):
    st = write_config_only(tmp_path / "st", {"architectures": ["XLMRobertaForMaskedLM"]})
    (st / "modules.json").write_text("[]")
    assert detect_spec("st", str(st), st).family == "bi-encoder"
    bare = write_config_only(tmp_path / "bare", {"architectures": ["BertModel"]})
    assert detect_spec("bare", str(bare), bare).family == "bi-encoder"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"}, "T5ForConditionalGeneration"),
        ({"model_type": "bert"}, "architectures=[]"),
        ({"architectures": ["XLMRobertaForSequenceClassification"], "auto_map": {"AutoModel": "x.Y"}}, "custom code"),
    ],
)
def test_undetectable_checkpoints_say_why(tmp_path, config, reason):
    directory = write_config_only(tmp_path, config)
    with pytest.raises(UnknownFamily) as caught:
        detect_spec("mine", str(directory), directory)
    assert "cannot tell the model family" in str(caught.value)
    assert reason in str(caught.value)
    assert "catalog id" in str(caught.value)


def test_unreadable_config_says_why(tmp_path):
    tmp_path.joinpath("config.json").write_text("{not json")
    with pytest.raises(UnknownFamily, match="not JSON"):
        detect_spec("mine", str(tmp_path), tmp_path)


# ---------------------------------------------------------------------------------- the server
@pytest.fixture(scope="module")
def catalog_server(
    start_server: Callable[..., RunningServer], tmp_path_factory: pytest.TempPathFactory, minilm_bi_encoder_dir: Path
) -> RunningServer:
    root = tmp_path_factory.mktemp("undetectable")
    seq2seq = write_config_only(root / "monot5", {"architectures": ["T5ForConditionalGeneration"], "model_type": "t5"})
    remote = write_config_only(
        root / "remote", {"architectures": ["XLMRobertaModel"], "auto_map": {"AutoModel": "modeling.Custom"}}
    )
    return start_server(
        "--ready-when",
        "any",  # monot5 and remote never load
        "--model",
        f"monot5={seq2seq}",
        "--model",
        f"remote={remote}",
        "--model",
        "sentence-transformers/all-MiniLM-L6-v2",
    )


@pytest.mark.parametrize(("name", "reason"), [("monot5", "T5ForConditionalGeneration"), ("remote", "custom code")])
def test_undetectable_model_answers_502_with_the_reason(catalog_server, name, reason):
    response = httpx.post(
        f"{catalog_server.url}/v1/score/{name}", json={"query": {"text": "q"}, "items": [{"text": "d"}]}, timeout=30
    )
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "MODEL_LOAD_FAILED"
    assert error["param"] == "model"
    assert "cannot tell the model family" in error["message"] and reason in error["message"]
    assert catalog_server.alive()


def test_models_lists_catalog_and_served_models_with_state(catalog_server):
    body = httpx.get(f"{catalog_server.url}/v1/models", timeout=30).json()
    models = {model["id"]: model for model in body["data"]}
    assert body["models"] == body["data"]
    assert set(catalog()) <= set(models)  # every catalog entry, loaded or not
    for model_id, (architecture, _, max_length, _) in CROSS_ENCODERS.items():
        entry = models[model_id]
        assert (entry["state"], entry["loaded"], entry["registered"]) == ("available", False, False)
        assert (entry["family"], entry["architecture"], entry["max_length"]) == (
            "cross-encoder",
            architecture,
            max_length,
        )
        assert entry["license"] and entry["notes"]
    served = models["sentence-transformers/all-MiniLM-L6-v2"]
    assert (served["state"], served["loaded"], served["registered"], served["family"]) == (
        "loaded",
        True,
        True,
        "bi-encoder",
    )
    failed = models["monot5"]
    assert (failed["state"], failed["loaded"], failed["catalog_id"]) == ("failed", False, None)
    assert "cannot tell the model family" in failed["last_error"]["message"]
