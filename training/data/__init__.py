"""The data layer training and eval share: labeled logs (logs) and their cached embeddings
(embed_cache). Nothing here imports the training pipeline (fit, export, tracking)."""
