"""The operators' loop: verdicts from the review page become video-level training samples.

Weak supervision makes this cheap: a verdict on a clip ("false alarm", "yes, that was a fight") is exactly
the video-level label the method trains on. ``verdicts`` reads and checks the page's export against the
scored predictions; ``folder`` is the feedback dataset (a VadCLIP list, its features and a record of where
every sample came from); ``add`` turns verdicts into samples (``cplvad feedback add``); ``training`` adds
the samples to the training set (``data.feedback``); ``metrics`` scores a model on them (false alarms per
hour on the clips marked false alarm, recall of confirmed events) for the evaluation and for promotion.
"""
