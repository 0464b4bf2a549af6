"""Shared-prefix KV reuse for LLM rerankers: pairs/s with and without it, same model, same requests.

Builds a random-weight Qwen3-Reranker-shaped checkpoint (Qwen3ForCausalLM, a Qwen-style BPE
tokenizer trained on the passages), then reranks TREC DL 2019 queries with their 100 BM25
passages each, through the real scheduler (token-budget batches, `batch_key` grouping), once
with `prefix_reuse: false` and once with `prefix_reuse: true`. A long instruction makes the
shared prefix (system prompt + instruction + query) a large part of every prompt, as in
instruction-tuned reranking. Scores of the two runs must agree (printed as max |Δ|).

    python benchmarks/prefix_reuse.py                      # CPU, fp32
    python benchmarks/prefix_reuse.py --device cuda --dtype bfloat16 --layers 8 --hidden 1024
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the checkpoint builders and data loader the tests use

from support.data import TREC_DL_2019, trec_dl_2019  # noqa: E402
from support.llm_checkpoints import build_qwen_tokenizer  # noqa: E402

from rerankd.core.types import ScoreOptions  # noqa: E402
from rerankd.engine.scheduler import Scheduler, SchedulerConfig  # noqa: E402
from rerankd.models import build_family  # noqa: E402
from rerankd.models.catalog import lookup  # noqa: E402
from rerankd.models.runtime import DTYPES, Placement, configure_threads  # noqa: E402

CATALOG_ID = "Qwen/Qwen3-Reranker-0.6B"
INSTRUCTION = (
    "Given a web search query from a user of a medical and general-knowledge search engine, judge whether the "
    "passage answers the query directly and completely. A relevant passage states the answer itself rather than "
    "only mentioning the topic; it may use different words than the query, and it may answer a closely related "
    "formulation of the same need. Passages that define a term the query asks about, give the number, date, "
    "place or procedure the query asks for, or explain the cause or effect the query asks about are relevant. "
    "Passages that only share keywords, describe a different entity with the same name, advertise a product, "
    "or answer a different question are not relevant. Prefer precise, factual passages; ignore style, grammar "
    "and length. When the query is ambiguous, consider its most common interpretation in web search, and treat "
    "passages about rare interpretations as not relevant unless they also cover the common one."
)


def build_checkpoint(target: Path, corpus: list[str], layers: int, hidden: int, seed: int = 0) -> Path:
    from tokenizers import Tokenizer
    from transformers import Qwen3Config, Qwen3ForCausalLM

    build_qwen_tokenizer(target, corpus)
    tokenizer = Tokenizer.from_file(str(target / "tokenizer.json"))
    torch.manual_seed(seed)
    heads = max(2, hidden // 64)
    config = Qwen3Config(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        intermediate_size=3 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        head_dim=64,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.token_to_id("<|endoftext|>"),
    )
    Qwen3ForCausalLM(config).save_pretrained(str(target))
    return target


async def rerank_all(family, queries, instruction: str, concurrency: int, config: SchedulerConfig):
    """Score every query's passages through a scheduler; returns (scores per query, seconds)."""
    executor = ThreadPoolExecutor(max_workers=1)
    tokenize = ThreadPoolExecutor(max_workers=2)
    scheduler = Scheduler(family, executor, config)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(query):
        async with gate:
            prepared = await loop.run_in_executor(
                tokenize, family.prepare, query.query, query.documents, instruction, ScoreOptions()
            )
            outputs = await scheduler.run(prepared)
            return family.scores(prepared, outputs, raw=True)

    started = time.perf_counter()
    scores = await asyncio.gather(*(one(query) for query in queries))
    elapsed = time.perf_counter() - started
    executor.shutdown()
    tokenize.shutdown()
    return scores, elapsed, scheduler.stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=6, help="TREC DL 2019 queries (100 passages each)")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    parser.add_argument("--concurrency", type=int, default=1, help="requests in flight at once")
    parser.add_argument("--max-batch-tokens", type=int, default=SchedulerConfig().max_batch_tokens)
    parser.add_argument("--no-instruction", action="store_true", help="use the card's short default instruction")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    if not TREC_DL_2019.exists():
        raise SystemExit(f"{TREC_DL_2019} is absent")
    threads = configure_threads(args.threads)
    trec = trec_dl_2019()
    queries = trec[: args.queries]
    instruction = None if args.no_instruction else INSTRUCTION
    placement = Placement(torch.device(args.device), DTYPES[args.dtype])
    config = SchedulerConfig(max_batch_tokens=args.max_batch_tokens)
    with tempfile.TemporaryDirectory() as folder:
        corpus = [document for query in trec for document in query.documents]
        model_dir = build_checkpoint(Path(folder) / "qwen3", corpus, args.layers, args.hidden)
        spec = lookup(CATALOG_ID)
        families = {
            reuse: build_family(
                dataclasses.replace(spec, settings={**spec.settings, "prefix_reuse": reuse}), placement, model_dir
            )
            for reuse in (False, True)
        }
        sample = families[False].prepare(queries[0].query, queries[0].documents, instruction, ScoreOptions())
        shared = families[False].template.parts(queries[0].query, queries[0].documents[:1], instruction).shared
        parameters = sum(p.numel() for p in families[False].network.parameters())
        print(
            f"model: Qwen3ForCausalLM {args.layers} layers, hidden {args.hidden}, {parameters / 1e6:.1f}M parameters, "
            f"{args.dtype} on {args.device} ({threads} threads)"
        )
        print(
            f"requests: {len(queries)} x 100 passages; prompt {np.mean(sample.lengths):.0f} tokens on average, "
            f"of which {len(shared)} shared prefix (system prompt, instruction, query); concurrency {args.concurrency}"
        )
        results = {}
        for reuse in (False, True, False, True):  # alternate, keep the second run of each (warm)
            scores, seconds, stats = asyncio.run(
                rerank_all(families[reuse], queries, instruction, args.concurrency, config)
            )
            results[reuse] = (scores, seconds, stats)
        pairs = 100 * len(queries)
        for reuse in (False, True):
            _, seconds, stats = results[reuse]
            label = "with prefix reuse   " if reuse else "without prefix reuse"
            print(f"{label}: {pairs / seconds:8.1f} pairs/s  ({seconds:.2f} s, {stats.batches} batches)")
        delta = max(np.abs(a - b).max() for a, b in zip(results[False][0], results[True][0], strict=True))
        print(f"speed-up: {results[False][1] / results[True][1]:.2f}x; max |score difference| = {delta:.2e}")


if __name__ == "__main__":
    main()
