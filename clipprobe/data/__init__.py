"""Data: tasks (a question asked of images: label column, classes, splits), data sources (`readers`: the DataSource
base and users' datasets through schemes: imagefolder, csv, parquet, hf), splitting by label, image safety, TOML task
files, and the built-in real-photo task traffic-light-crops."""
