"""The embedded AWS emulator: moto plus what moto cannot do without Docker (see README.md here)."""
