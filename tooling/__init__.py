"""Project code behind the Invoke tasks (build, synth, terraform, local runtime, operations)."""
