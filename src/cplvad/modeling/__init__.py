"""The CPL-VAD model: temporal pyramid encoder, B-branch head, C-branch prompts, losses, factory."""
