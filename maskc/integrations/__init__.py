"""Bridges to other libraries: HuggingFace transformers (:mod:`maskc.integrations.transformers`)
and FlexAttention mask_mods (:mod:`maskc.integrations.flex_mask_mod`, ``mc.from_mask_mod``).

Each submodule imports its library lazily; importing this package imports neither.
"""
