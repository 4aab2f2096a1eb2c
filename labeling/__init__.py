"""Labeling: answers and Sonnet/Opus judges through the Messages and Batches APIs -> labeled logs
(training.data.logs format) that training and eval read. Imports router and training.data only."""
