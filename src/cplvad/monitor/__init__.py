"""Watching a deployed model: per-source daily score histograms kept by the scoring jobs (``histograms``)
and ``cplvad monitor``, which compares them with the distribution the threshold was calibrated on
(``drift``)."""
