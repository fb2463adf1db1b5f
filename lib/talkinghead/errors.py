"""The errors users meet. Each carries one sentence: what is wrong, with which file, and what to do.

Code deep inside the package raises these instead of letting a library's stack trace reach the user; the
command line prints only the sentence (see `talkinghead.cli`).
"""
from __future__ import annotations


class TalkingHeadError(Exception):
    """Base class: `str(err)` is the whole message a user needs."""


class WeightsError(TalkingHeadError):
    """A weights file is missing, truncated, corrupt, or cannot be downloaded."""


class FaceError(TalkingHeadError):
    """No face, or several faces where one was expected."""


class MediaError(TalkingHeadError):
    """An image, audio or video file cannot be read or has no usable content."""


class BundleError(TalkingHeadError):
    """An avatar bundle is incomplete, from another format version, or fails its hash check."""


class DeviceError(TalkingHeadError, ValueError):
    """A device (cuda, mps, ...) was asked for that this machine or this PyTorch does not have."""


class DatasetError(TalkingHeadError):
    """A training dataset is corrupt or does not fit the model (features, frame count, validity)."""
