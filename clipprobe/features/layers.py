"""Layer surgery on open_clip image towers: which features are read (embedding, pre-projection, tokens, grid)."""

from __future__ import annotations

from ..core.errors import UsageError
from .config import ALL_TOKENS, DEFAULT_LAYER, GRID_CELLS


def layer_identity(layer: str) -> str:
    """How a layer enters the cache key and the row name: the grid carries its size ("grid:2x2")."""
    return f"grid:{GRID_CELLS[0]}x{GRID_CELLS[1]}" if layer == "grid" else layer


def layer_forward(model, layer: str, model_name: str):
    """The function from an image batch to (n, d) features at `layer` of `model`'s image tower.

    open_clip ViT towers (VisionTransformer), width W, patch grid h x w:
      embedding       model.encode_image: the pooled token after the projection (embed_dim numbers).
      pre-projection  the same pooled token before `proj` (class token after ln_post for CLIP; W numbers),
                      so that pre-projection @ visual.proj == embedding. This is what the CLIP paper probed.
      tokens          the mean of the last block's h*w patch tokens (class token excluded), after ln_post
                      (not for towers with an attentional pooler, e.g. CoCa, whose final LayerNorm follows
                      the pooler); W numbers.
      grid            those patch tokens average-pooled to GRID_CELLS (2 x 2) cells, adaptively (cells
                      overlap by one patch when h or w is odd), concatenated cell by cell, row-major from the
                      top left: 4 * W numbers that keep where things are.
      all-tokens      every one of those h*w patch tokens, position by position (row-major from the top
                      left), each W numbers: h*w*W numbers, what an attentive probe reads (`token_width` says W).
    open_clip ResNet towers (ModifiedResNet), whose final feature map (layer4) has C = 32 * width channels:
      embedding       model.encode_image: the attention pool's output (embed_dim numbers).
      pre-projection  the attention pool's output before its output projection c_proj (C numbers), so that
                      c_proj(pre-projection) == embedding: the ResNet's counterpart of the ViT's.
      tokens          the mean of the final feature map over its positions (C numbers; a ResNet has no
                      final norm, the map is the last block's ReLU output). It is also the query the
                      attention pool starts from, before the positional embedding.
      grid            the final feature map average-pooled to 2 x 2 cells, as for the ViT: 4 * C numbers.
      all-tokens      every position of the final feature map, row-major: h*w*C numbers.
    Any other image tower (a timm tower, ...) has only `embedding`; other layers raise a UsageError.
    The pre-projection layer drops the tower's projection in place (open_clip's `prune_intermediate_layers`
    for the ViT, an identity c_proj for the ResNet): the model must be one built for this extractor."""
    if layer == DEFAULT_LAYER:
        return model.encode_image
    import torch
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    visual = getattr(model, "visual", None)
    if isinstance(visual, VisionTransformer):
        if layer == "pre-projection":
            visual.prune_intermediate_layers(indices=1, prune_norm=False, prune_head=True)  # keeps every block
            return lambda images: _pooled(visual(images))
        # A tower with an attentional pooler applies ln_post after the pooler, on other widths: not to tokens.
        normalize = visual.attn_pool is None

        def final_map(images):
            out = visual.forward_intermediates(
                images, indices=1, normalize_intermediates=normalize, intermediates_only=True
            )
            return out["image_intermediates"][0]  # (n, W, h, w), class token removed
    elif isinstance(visual, ModifiedResNet):
        if layer == "pre-projection":
            c_proj = visual.attnpool.c_proj
            identity = torch.nn.Linear(
                c_proj.in_features, c_proj.in_features, device=c_proj.weight.device, dtype=c_proj.weight.dtype
            )
            with torch.no_grad():
                identity.weight.copy_(torch.eye(c_proj.in_features))
                identity.bias.zero_()
            visual.attnpool.c_proj = identity
            return visual

        def final_map(images):
            return visual.forward_intermediates(images, indices=1, intermediates_only=True)["image_intermediates"][0]
    else:
        tower = type(visual).__name__ if visual is not None else "none"
        raise UsageError(
            f"Layer '{layer}' does not exist for model '{model_name}' (image tower {tower}). Available: {DEFAULT_LAYER}"
        )
    if layer == "tokens":
        return lambda images: final_map(images).mean(dim=(2, 3))
    if layer == ALL_TOKENS:  # (n, W, h, w) -> (n, h*w, W) -> one row of h*w*W numbers per image
        return lambda images: final_map(images).flatten(2).transpose(1, 2).flatten(1)
    return lambda images: _grid(final_map(images))


def token_width(model, layer: str) -> int | None:
    """The numbers per position of the all-tokens layer of `model`'s image tower (a ViT's width, a ResNet's
    final channels); None for any other layer."""
    if layer != ALL_TOKENS:
        return None
    from open_clip.modified_resnet import ModifiedResNet

    visual = model.visual
    if isinstance(visual, ModifiedResNet):
        return int(visual.attnpool.k_proj.in_features)
    return int(visual.transformer.width)


def _pooled(output):
    """A tower built with output_tokens returns (pooled, tokens)."""
    return output[0] if isinstance(output, tuple) else output


def _grid(feature_map):
    """(n, C, h, w) -> (n, cells * C): average-pooled to GRID_CELLS, concatenated cell by cell (row-major)."""
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(feature_map, GRID_CELLS).permute(0, 2, 3, 1).flatten(1)
