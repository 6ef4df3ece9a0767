"""agegate.edge: everything that runs on the checkout box.

This room never imports TensorFlow and nothing from the other rooms; train and
convert import *from* it (preprocessing, metadata, bands) so that training and
serving cannot disagree.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("agegate")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"
