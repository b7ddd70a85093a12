"""Where the project keeps its sources and build outputs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / "build"
FUNCTIONS_DIR = ROOT / "functions"
RESULTS_DIR = ROOT / "results"
