"""The dashcam application, built on the clipprobe library as open_clip_train is built on open_clip: a procedural
world with known attributes and caption policies, its tasks and prompts, pretraining of small CLIP models under a
caption policy, the measured sensitivity score over counterfactual pairs, the curation experiment and contact
sheets."""
