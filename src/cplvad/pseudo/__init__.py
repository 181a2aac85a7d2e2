"""Pseudo labels: CAR refinement of the stage-1 model's outputs, and the pseudo-label file."""
