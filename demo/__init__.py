"""Demo material for camwatch: a synthetic production-image stream with planted failures.

``python -m demo.generate`` writes the stream (see :mod:`demo.generate`); ``python -m demo.validate``
measures, with the real EfficientNet-Lite0 model, how the planted failures show up in class activation maps.
"""
