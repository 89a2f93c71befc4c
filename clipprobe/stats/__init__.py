"""Inference where the unit is the seed: intervals and tests of a difference over pretraining (or training) seeds,
equivalence tests against a declared margin, and corrections for the number of comparisons. Pure numerics on
arrays, with scipy.stats doing the distributions."""
