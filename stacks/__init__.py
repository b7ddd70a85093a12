"""CDKTF stacks. All cdktf imports stay in this package and main.py (a later move to the
maintained fork, CDK Terrain, then touches only these files)."""
