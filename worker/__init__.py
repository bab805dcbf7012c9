"""camwatch worker: model loading, the CAM engine, heatmap statistics and the monitoring service."""
