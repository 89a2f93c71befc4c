"""Data: tasks (a question asked of images: label column, classes, splits), users' datasets through schemes
(imagefolder, csv, parquet, hf), TOML task files, and the built-in real-photo task traffic-light-crops."""
