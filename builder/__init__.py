"""The dataset builder: sources → dedup/split → plan → respond → validate → judge → perturb →
assemble → export."""
