"""A durable copy of the training checkpoint outside the model directory (an ``s3://`` prefix or a folder).

A Kubeflow pod that fails is replaced by a fresh pod whose output artifact is empty: the checkpoint the
failed attempt wrote there is gone. With a mirror, every checkpoint is also copied to
``<uri>/<fingerprint>/checkpoint.pt`` and a fresh model directory is seeded from that copy before training
starts, so the retried pod resumes instead of starting over. The key is the training fingerprint (config,
samples, pseudo labels), so one prefix can serve every stage and run: a checkpoint is only ever restored
into the training it was written by.
"""

from __future__ import annotations

import logging
from pathlib import Path

from cplvad.io import write_text
from cplvad.modeling.factory import MODEL_FILES
from cplvad.storage.location import Location, open_location
from cplvad.train.trainer import CHECKPOINT_FILE, FINGERPRINT_FILE

log = logging.getLogger(__name__)


class CheckpointMirror:
    def __init__(self, uri: str, fingerprint: str) -> None:
        self.sink: Location = open_location(f"{uri.rstrip('/')}/{fingerprint}")
        self.fingerprint = fingerprint

    def restore(self, out_dir: str | Path) -> bool:
        """Seed a fresh ``out_dir`` with the mirrored checkpoint; True when one was restored.

        A directory that already holds a checkpoint, a fingerprint or model files is left alone: it is
        either further along (a local resume) or another training's, which the trainer handles itself.
        """
        out_dir = Path(out_dir)
        if any((out_dir / name).exists() for name in (CHECKPOINT_FILE, FINGERPRINT_FILE, *MODEL_FILES)):
            return False
        if not self.sink.get_file(CHECKPOINT_FILE, out_dir / CHECKPOINT_FILE):
            return False
        write_text(out_dir / FINGERPRINT_FILE, self.fingerprint + "\n")
        log.info("restored the training checkpoint from %s", self.sink.uri(CHECKPOINT_FILE))
        return True

    def push(self, out_dir: str | Path) -> None:
        """Copy the checkpoint just written in ``out_dir`` (a ``train(on_checkpoint=...)`` hook)."""
        self.sink.put_file(CHECKPOINT_FILE, Path(out_dir) / CHECKPOINT_FILE)

    def discard(self) -> None:
        """Drop the copy once the model is finished: the model itself is the durable result."""
        self.sink.delete(CHECKPOINT_FILE)

    def uri(self) -> str:
        return self.sink.uri(CHECKPOINT_FILE)
