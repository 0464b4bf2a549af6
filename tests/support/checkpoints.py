"""Test-side name for the offline checkpoint builders (they live in the package for `rerankd bench`)."""

from rerankd.bench.checkpoints import TOKENIZER_FILES, build_minilm_cross_encoder, minilm_dir

__all__ = ["TOKENIZER_FILES", "build_minilm_cross_encoder", "minilm_dir"]
