"""Monitoring maths, torch-free and SQL-free: heatmap averaging, the reference, drift tests, windows, flag rules."""
