"""agegate.train: dataset readers, data check/report/split, backbone registry, training, export.

TensorFlow is imported inside the functions that need it, so `agegate data check`
starts fast and works on a base install.
"""
