"""Evaluation: verification protocols, uniform classification metrics, IJB and identification."""
