"""Pure scheduling policy: state in, decisions out. No I/O, no clock, no DB."""
