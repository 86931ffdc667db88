"""Interactive explorers. Each is a pure compute function (unit-tested), a thin ipywidgets layer and
a static matplotlib fallback for non-interactive runs (nbval, rendered pages).

Modules: ``checkerboard`` (transposed-convolution overlap), ``activations`` (GELU vs ReLU),
``rearrange`` (space-to-depth pooling).
"""
