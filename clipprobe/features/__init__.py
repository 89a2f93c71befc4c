"""Frozen features: what to extract (config), how (extractors: open_clip towers at a chosen layer, raw pixels,
optionally averaged over an orbit group), in which precision, from which weights, and the cache that keeps them
(chunked, resumable and shardable extraction)."""
