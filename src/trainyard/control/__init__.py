"""The control loop and the rules it applies to jobs' checkpoints."""
