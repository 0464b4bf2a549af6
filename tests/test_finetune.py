"""`rerankd finetune`: a few training steps per family; the adapter it writes hot-loads through the admin
API and scores exactly like PEFT's merged model (scored by sentence-transformers, nothing of rerankd)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from support.data import SHARED_DATA
from support.eval_data import run_cli, write_jsonl

from rerankd import Client
from rerankd.bench.server import free_port

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
QUERY = "how do plants make food from sunlight"
DOCUMENTS = [
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in the chloroplasts.",
    "Plants use chlorophyll to capture the energy of sunlight.",
    "The Eiffel Tower is 330 metres tall.",
    "Roots take up water and minerals from the soil.",
    "Stock markets fell sharply on Monday.",
]
# (query id, query, relevant, hard negatives): six tiny training queries.
TRAINING = [
    ("q1", "what do pandas eat", ["Giant pandas eat almost nothing but bamboo."],
     ["Pandas live in China.", "Bears hibernate in winter.", "Bamboo grows fast."]),
    ("q2", "boiling point of water", ["Water boils at 100 degrees Celsius at sea level."],
     ["Ice melts at 0 degrees.", "Water covers most of Earth.", "Steam engines use boiling water."]),
    ("q3", "who wrote hamlet", ["Hamlet is a tragedy written by William Shakespeare."],
     ["Hamlet is set in Denmark.", "Shakespeare was born in 1564.", "Macbeth is a Scottish play."]),
    ("q4", "speed of light", ["Light travels at about 299,792 kilometres per second in a vacuum."],
     ["Sound travels at 343 m/s.", "Light bulbs use electricity.", "A light year measures distance."]),
    ("q5", "capital of australia", ["Canberra is the capital city of Australia."],
     ["Sydney is the largest city of Australia.", "Australia is a continent.", "Kangaroos live in Australia."]),
    ("q6", "how many legs does a spider have", ["Spiders have eight legs."],
     ["Insects have six legs.", "Spiders spin webs.", "Some spiders are venomous."]),
]  # fmt: skip


@pytest.fixture(scope="module")
def training_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """finetune's JSONL shape: {id, query, positives, negatives}."""
    rows = [{"id": q, "query": t, "positives": p, "negatives": n} for q, t, p, n in TRAINING]
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", rows)


def finetune(capsys, *args: object) -> tuple[str, str]:
    code, stdout, stderr = run_cli(capsys, "finetune", *args, "--no-progress", "--backend", "torch")
    assert code == 0, stderr
    return stdout, stderr


def merged_scores(family: str, base_dir: Path, adapter_dir: Path) -> np.ndarray:
    """PEFT loads the adapter onto the base network and merges it; sentence-transformers scores."""
    from peft import PeftModel
    from sentence_transformers import CrossEncoder, SentenceTransformer

    if family == "cross-encoder":
        model = CrossEncoder(str(base_dir), device="cpu")
        model[0].model = PeftModel.from_pretrained(model[0].model, str(adapter_dir)).merge_and_unload()
        return np.asarray(model.predict([(QUERY, doc) for doc in DOCUMENTS]), dtype=np.float64)
    model = SentenceTransformer(str(base_dir), device="cpu")
    model[0].model = PeftModel.from_pretrained(model[0].model, str(adapter_dir)).merge_and_unload()
    vectors = model.encode([QUERY, *DOCUMENTS], normalize_embeddings=True)
    return np.asarray(vectors[1:] @ vectors[0], dtype=np.float64)


def served_scores(client: Client, model: str) -> np.ndarray:
    result = client.score(model, QUERY, [{"id": str(i), "text": doc} for i, doc in enumerate(DOCUMENTS)])
    scores = np.empty(len(DOCUMENTS))
    for entry in result.scores:
        scores[int(entry.item_id)] = entry.score
    return scores


def trained(adapter_dir: Path) -> dict:
    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    assert any(name.endswith("lora_B.weight") and tensor.abs().max() > 0 for name, tensor in tensors.items())
    return tensors


def check_split(out: Path) -> None:
    train = set((out / "queries.train.txt").read_text().split())
    heldout = set((out / "queries.heldout.txt").read_text().split())
    assert train and heldout and not train & heldout  # query-disjoint


def test_bi_encoder_adapter_hot_loads_and_scores_like_peft_merged(
    capsys, tmp_path, training_pairs, server, minilm_bi_encoder_dir
):
    out = tmp_path / "bi"
    stdout, _ = finetune(
        capsys,
        *("--dataset", training_pairs, "--model", MINILM, "--out", out, "--eval-fraction", 0.34),
        *("--max-steps", 3, "--batch-size", 2, "--lr", "5e-3", "--max-length", 64),
        *("--serve-to", server.url, "--name", MINILM, "--adapter", "ft-bi"),
    )
    tensors = trained(out)
    # the bare AutoModel's module paths, under PEFT's prefix; BERT's pooler (never read by mean pooling) left alone
    assert all(name.startswith("base_model.model.encoder.layer.") for name in tensors)
    check_split(out)
    record = json.loads((out / "rerankd-finetune.json").read_text())
    assert set(record["heldout_eval"]["systems"]) == {"input", "base", "adapter"}
    assert "| adapter |" in stdout
    with Client(server.url) as client:
        got = served_scores(client, f"{MINILM}:ft-bi")
        base = served_scores(client, MINILM)
    reference = merged_scores("bi-encoder", minilm_bi_encoder_dir, out)
    assert np.abs(got - reference).max() <= 1e-5
    assert np.abs(reference - base).max() > 1e-3  # the adapter changed the scores: the comparison can fail


def test_cross_encoder_adapter_from_a_trec_run_scores_like_peft_merged(
    capsys, tmp_path, server, minilm_cross_encoder_dir
):
    trec = SHARED_DATA / "trec-dl-2019"
    if not trec.exists():
        pytest.skip(f"{trec} is absent")
    queries = tmp_path / "queries.txt"
    queries.write_text("1037798\n104861\n1063750\n1106007\n")
    out = tmp_path / "ce"
    finetune(
        capsys,
        *("--dataset", trec, "--queries-file", queries, "--depth", 10, "--negatives", 3, "--positives", 2),
        *("--model", minilm_cross_encoder_dir, "--out", out, "--eval-fraction", 0.25),
        *("--max-steps", 2, "--batch-size", 2, "--lr", "5e-3", "--max-length", 64),
    )
    tensors = trained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    assert "classifier" in config["modules_to_save"]
    # the classification head, trained in full (PEFT's modules_to_save), and LoRA on the encoder
    assert {"base_model.model.classifier.weight", "base_model.model.classifier.bias"} <= set(tensors)
    assert any(name.startswith("base_model.model.bert.encoder.layer.") for name in tensors)
    check_split(out)
    with Client(server.url) as client:
        client.load_adapter("minilm", "ft-ce", str(out))
        got = served_scores(client, "minilm:ft-ce")
        base = served_scores(client, "minilm")
    reference = merged_scores("cross-encoder", minilm_cross_encoder_dir, out)
    assert np.abs(got - reference).max() <= 1e-5
    assert np.abs(reference - base).max() > 1e-3


def test_same_seed_same_adapter(capsys, tmp_path, training_pairs):
    common = ("--dataset", training_pairs, "--model", MINILM, "--eval-fraction", 0, "--max-steps", 2)
    common += ("--batch-size", 2, "--max-length", 32, "--seed", 7)
    finetune(capsys, *common, "--out", tmp_path / "one")
    finetune(capsys, *common, "--out", tmp_path / "two")
    one, two = trained(tmp_path / "one"), trained(tmp_path / "two")
    assert one.keys() == two.keys()
    assert all(bool((one[name] == two[name]).all()) for name in one)


def test_bad_inputs_give_one_clear_line(capsys, tmp_path, training_pairs):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    common = ("--dataset", training_pairs, "--model", MINILM, "--out", tmp_path / "out")
    cases = {
        "unknown model": (
            ("--dataset", training_pairs, "--model", tmp_path / "nope", "--out", tmp_path / "o"),
            "does not exist",
        ),
        "unreachable server": (
            (*common, "--serve-to", f"http://127.0.0.1:{free_port()}", "--name", "m", "--adapter", "a"),
            "cannot reach the server",
        ),
        "serve-to alone": ((*common, "--serve-to", "http://127.0.0.1:1"), "go together"),
        "out is a file": (("--dataset", training_pairs, "--model", MINILM, "--out", a_file), "is not an adapter"),
        "too few queries": ((*common, "--eval-fraction", 0.5, "--test-fraction", 0.45), "leave"),
        "missing dataset": (("--dataset", tmp_path / "none", "--model", MINILM, "--out", tmp_path / "o"), "exist"),
    }
    for name, (args, expected) in cases.items():
        code, stdout, stderr = run_cli(capsys, "finetune", *args)
        lines = stderr.strip().splitlines()
        assert code == 2, (name, stderr)
        assert len(lines) == 1 and lines[0].startswith("rerankd finetune: "), (name, stderr)
        assert expected in lines[0], (name, lines[0])
        assert "Traceback" not in stdout + stderr
