"""`rerankd finetune`: a LoRA adapter for a cross-encoder or bi-encoder, trained on your judgments.

`examples` turns qrels + a first-stage run + texts (or JSONL training pairs) into training
queries with hard negatives taken from the run; `split` makes query-disjoint train / held-out /
test sets; `base` resolves the model the way `rerankd serve` does; `trainer` trains with
sentence-transformers' trainers (`CrossEncoderTrainer` + `LambdaLoss`, `SentenceTransformerTrainer`
+ `MultipleNegativesRankingLoss`) on a PEFT LoRA of the family's network, and writes the PEFT
adapter directory `PUT /v1/models/{m}/adapters/{a}` loads; `callbacks` hold the progress bar and
early stopping; `command` is the CLI (held-out evaluation through `rerankd.evaluation`).
"""
