"""Raw video -> CLIP snippet features (one (T, D) float32 array per video and crop).

Modules: ``video`` (PyAV decoding and snippet sampling), ``transforms`` (1-crop / 10-crop preprocessing),
``encoder`` (batched CLIP image encoder), ``pool`` (decode worker processes), ``assemble`` (encoder rows back
to per-video features), ``sources`` (local folders, list files, ``s3://`` prefixes), ``manifest`` (extraction
manifest, resume, shard merge), ``runner`` (orchestration), ``inmemory`` (the same features kept in memory,
batched or streamed, for scoring) and ``demo_videos`` (synthetic videos). This package stays import-light: decode workers
import it in every process.
"""
