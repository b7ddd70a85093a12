"""Ending the local stack's child processes, which all exit when their stdin closes."""

from __future__ import annotations

import subprocess


def stop_child(process: subprocess.Popen, timeout: float) -> None:
    """Close its stdin (its signal to exit), wait, and kill it if it does not."""
    if process.poll() is not None:
        return
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
