"""Small random-weight sequence-classification checkpoints of each cross-encoder architecture.

Each is the real `transformers` architecture of a catalogued reranker (XLM-RoBERTa for the BAAI
rerankers, BERT for the ms-marco MiniLMs, DeBERTa-v2 for mxbai-rerank-v1, ModernBERT for
gte-reranker-modernbert) with 2 layers, a small hidden size and a fixed seed, and a tokenizer
laid out like the published one: the real XLM-R vocabulary from `../shared/data`, the real BERT
vocabulary from the MiniLM package, and for DeBERTa-v3 (SentencePiece Unigram) and ModernBERT
(byte-level BPE) a small tokenizer trained here on TREC passages with the architecture's own
`[CLS] A [SEP] B [SEP]` post-processor.

Weights are drawn with a wide initializer (`init_std`, not the usual 0.02, under which a tiny
random encoder maps every text to nearly the same vector) and the classifier with `head_std`,
so that logits spread over a few units: no near-ties that would make a ranking comparison
meaningless, no saturated sigmoids that would hide a wrong input.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

import torch

from rerankd.bench.checkpoints import bert_cross_encoder_config, init_head, save_checkpoint, xlmr_cross_encoder_config

# A real checkpoint's tokenizer_config.json carries these; rerankd reads pad_token and model_max_length.
_XLMR_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
_BERT_SPECIALS = {
    "cls_token": "[CLS]",
    "sep_token": "[SEP]",
    "unk_token": "[UNK]",
    "pad_token": "[PAD]",
    "mask_token": "[MASK]",
}


def _write_tokenizer_config(target: Path, tokenizer_class: str, max_length: int, specials: dict, **extra) -> None:
    config = {"tokenizer_class": tokenizer_class, "model_max_length": max_length, **specials, **extra}
    (target / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def _update_config(target: Path, extra_config: dict) -> None:
    """Add keys `save_pretrained` would not write (a published checkpoint's extras)."""
    path = target / "config.json"
    config = json.loads(path.read_text())
    config.update(extra_config)
    path.write_text(json.dumps(config, indent=2))


def _random_classifier(model_class: type, config, *, seed: int, head_std: float) -> torch.nn.Module:
    """`model_class(config)` drawn from `seed`, its output layer redrawn at `head_std`.

    XLM-R's head has a dense layer before that output layer (`out_proj`); the others' is one linear.
    """
    torch.manual_seed(seed)
    model = model_class(config).eval()
    head = model.classifier
    init_head(getattr(head, "out_proj", head), head_std)
    return model


def build_xlmr_cross_encoder(
    target: Path, tokenizer_json: Path, *, seed: int = 0, init_std: float = 0.6, head_std: float = 0.5
) -> Path:
    """XLMRobertaForSequenceClassification laid out like BAAI/bge-reranker-v2-m3 (8192 tokens)."""
    from transformers import XLMRobertaForSequenceClassification

    config = xlmr_cross_encoder_config(hidden=32, layers=2, heads=4, intermediate=64, initializer_range=init_std)
    model = _random_classifier(XLMRobertaForSequenceClassification, config, seed=seed, head_std=head_std)
    save_checkpoint(model, target)
    shutil.copy(tokenizer_json, target / "tokenizer.json")
    _write_tokenizer_config(target, "XLMRobertaTokenizer", 8192, _XLMR_SPECIALS)
    return target


def build_bert_cross_encoder(
    target: Path, minilm_dir: Path, *, seed: int = 0, init_std: float = 0.3, head_std: float = 0.5
) -> Path:
    """BertForSequenceClassification with the MiniLM vocabulary, like cross-encoder/ms-marco-MiniLM.

    The published ms-marco cross-encoders name an Identity activation in their config (their
    scores are logits); so does this one, so the test covers that path of the activation rule.
    """
    from transformers import BertForSequenceClassification

    config = bert_cross_encoder_config(hidden=64, layers=2, heads=4, intermediate=128, initializer_range=init_std)
    model = _random_classifier(BertForSequenceClassification, config, seed=seed, head_std=head_std)
    # tokenizer_config.json is written below, with the specials rerankd reads
    save_checkpoint(model, target, minilm_dir, ("tokenizer.json", "vocab.txt", "special_tokens_map.json"))
    _update_config(target, {"sbert_ce_default_activation_function": "torch.nn.modules.linear.Identity"})
    _write_tokenizer_config(target, "BertTokenizer", 512, _BERT_SPECIALS, do_lower_case=True)
    return target


def _train_texts(texts: Iterable[str]) -> list[str]:
    return [text for text in texts if text.strip()]


def build_deberta_tokenizer(texts: Iterable[str], vocab_size: int = 2000):
    """A SentencePiece-style Unigram tokenizer with DeBERTa-v3's specials and pair template."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.Unigram())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace("``", '"')])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"],
        unk_token="[UNK]",
    )
    tokenizer.train_from_iterator(_train_texts(texts), trainer=trainer)
    return _with_cls_sep_template(tokenizer)


def _with_cls_sep_template(tokenizer):
    """`[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` (B in segment 1), as BERT-style tokenizers post-process."""
    from tokenizers import processors

    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    return tokenizer


def build_deberta_cross_encoder(
    target: Path, texts: Iterable[str], *, seed: int = 0, init_std: float = 0.3, head_std: float = 0.4
) -> Path:
    """DebertaV2ForSequenceClassification laid out like mixedbread-ai/mxbai-rerank-base-v1 (DeBERTa-v3)."""
    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer = build_deberta_tokenizer(texts)
    config = DebertaV2Config(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=512,
        type_vocab_size=0,
        relative_attention=True,
        position_buckets=256,
        max_relative_positions=-1,
        pos_att_type=["p2c", "c2p"],
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        position_biased_input=False,
        pooler_hidden_size=32,
        pad_token_id=0,
        num_labels=1,
        initializer_range=init_std,
    )
    model = _random_classifier(DebertaV2ForSequenceClassification, config, seed=seed, head_std=head_std)
    save_checkpoint(model, target)
    tokenizer.save(str(target / "tokenizer.json"))
    specials = {"bos_token": "[CLS]", "eos_token": "[SEP]", **_BERT_SPECIALS}
    _write_tokenizer_config(target, "DebertaV2Tokenizer", 512, specials)
    return target


def build_modernbert_tokenizer(texts: Iterable[str], vocab_size: int = 1500):
    """A byte-level BPE tokenizer with ModernBERT's specials and `[CLS] A [SEP] B [SEP]` template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_train_texts(texts), trainer=trainer)
    return _with_cls_sep_template(tokenizer)


def _draw_modernbert_weights(model: torch.nn.Module, *, seed: int, init_std: float, head_std: float) -> None:
    """Every weight drawn here from `seed`, in parameter order: the same checkpoint under any transformers.

    transformers releases consume the global seed differently while building a model (4.x and 5.0
    draw other weights than 5.24 from the same seed), so a seeded `model_class(config)` depends on
    the version; under 5.0 this ModernBERT's scores came out saturated (sigmoid ~1e-4) and rounded
    to ties. The stds follow ModernBERT's own scheme: `init_std` in, `init_std / sqrt(2 * layers)`
    for output projections.
    """
    generator = torch.Generator().manual_seed(seed)
    out_std = init_std / (2 * model.config.num_hidden_layers) ** 0.5
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("classifier."):
                continue
            if parameter.dim() == 1:  # norm weights 1, biases 0
                parameter.fill_(1.0 if name.endswith("weight") else 0.0)
                continue
            std = out_std if name.endswith("Wo.weight") or name == "head.dense.weight" else init_std
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=generator) * head_std)
        model.classifier.bias.fill_(0.1)  # as init_head


def build_modernbert_cross_encoder(
    target: Path, texts: Iterable[str], *, seed: int = 0, init_std: float = 0.3, head_std: float = 0.5
) -> Path:
    """ModernBertForSequenceClassification laid out like Alibaba-NLP/gte-reranker-modernbert-base."""
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    tokenizer = build_modernbert_tokenizer(texts)
    ids = {name: tokenizer.token_to_id(f"[{name.upper()}]") for name in ("cls", "sep", "pad", "unk", "mask")}
    config = ModernBertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=8192,
        global_attn_every_n_layers=2,
        local_attention=16,
        classifier_pooling="mean",
        pad_token_id=ids["pad"],
        cls_token_id=ids["cls"],
        sep_token_id=ids["sep"],
        bos_token_id=ids["cls"],
        eos_token_id=ids["sep"],
        num_labels=1,
        reference_compile=False,
        initializer_range=init_std,
    )
    model = ModernBertForSequenceClassification(config).eval()
    _draw_modernbert_weights(model, seed=seed, init_std=init_std, head_std=head_std)
    save_checkpoint(model, target)
    tokenizer.save(str(target / "tokenizer.json"))
    _write_tokenizer_config(target, "PreTrainedTokenizerFast", 8192, _BERT_SPECIALS)
    return target


def write_config_only(target: Path, config: dict) -> Path:
    """A directory whose config.json alone decides how it is detected (no weights needed to fail)."""
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.json").write_text(json.dumps(config, indent=2))
    return target
