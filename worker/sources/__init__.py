"""Where images come from: the folder source and the sidecar formats next to images."""
