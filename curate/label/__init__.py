"""Labeling: blinded dual-rater rounds in Label Studio, adjudication, consensus."""
