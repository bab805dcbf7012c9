"""Images: safe decoding (formats, bombs, EXIF orientation, 16-bit), thumbnails, heatmap overlays."""
