"""Per-image heatmap statistics: the registry of definitions and the pure functions computing them."""
