"""Delivery: build the zips, synthesize, run terraform, check, deploy; and the whole pipeline on this machine."""
