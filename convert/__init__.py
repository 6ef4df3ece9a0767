"""agegate.convert: TFLite conversion modes, QAT, evaluation and metrics, the QA gate, bundles."""
