"""`rerankd eval`: does a reranker help on *your* judgments, and which model or adapter is best?

A dataset (TREC folder, BEIR folder or JSONL) gives queries, relevance judgments (qrels), a
first-stage ranking and passage texts (`dataset`, `trec`, `beir`, `jsonl`, `bm25`). Each system
reranks the first stage's top candidates, in-process (`inprocess`, the engine through
`api.service.Service`) or through a running server (`remote`, the SDK). Metrics come from
ir-measures (trec_eval's own code through pytrec_eval, so numbers compare with published ones;
`metrics`), paired significance tests from scipy (`significance`); `runner` ties them together,
`report`, `markdown` and `plot` write JSON, Markdown and a PNG, `command` is the CLI.

Only `inprocess` may reach model code (an import-linter contract): with `--url`, evaluation
needs no torch.
"""
