"""What every other part of clipprobe stands on, importing nothing above it: errors and exit codes, the registry,
atomic storage and hashes, paths, the Hugging Face hub's reachability, and progress bars."""
