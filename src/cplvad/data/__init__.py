"""Datasets: manifests, feature lists, labels, annotations, ground truth and feature files."""

from cplvad.data.annotations import Segment, read_annotations
from cplvad.data.dataset import Dataset, DatasetManifest, FeatureList, Video, load_dataset, split_crop
from cplvad.data.features import chunk, load_features, open_features, resample
from cplvad.data.ground_truth import GTSegment, frame_labels, segment_ground_truth
from cplvad.data.labels import ClassList

__all__ = [
    "ClassList",
    "Dataset",
    "DatasetManifest",
    "FeatureList",
    "GTSegment",
    "Segment",
    "Video",
    "chunk",
    "frame_labels",
    "load_dataset",
    "load_features",
    "open_features",
    "read_annotations",
    "resample",
    "segment_ground_truth",
    "split_crop",
]
