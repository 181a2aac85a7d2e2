"""cplvad: CPL-VAD weakly supervised video anomaly detection, as a reproducible MLOps pipeline."""

__version__ = "0.1.0"
